"""The per-item shortcuts bind values exactly as the general path does."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

import fieldcrypt
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor, values, wire
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel


class Keyed(EncryptedModel):
    class Meta:
        table_name = "keyed"

    name = UnicodeAttribute(hash_key=True)
    number = NumberAttribute(range_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="pii")
    ssn_bidx = BlindIndexAttribute(of="ssn")


class Dated(EncryptedModel):
    class Meta:
        table_name = "dated"

    when = UTCDateTimeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="pii")


def test_model_row_matches_the_row_read_back_from_the_item(keyring: fieldcrypt.Keyring) -> None:
    """_row() (string fast path, numbers, datetimes) equals wire.row_key of the serialised item."""
    keyed = Keyed("p-1", 5, ssn="123-45-6789")
    assert keyed._row() == wire.row_key(keyed.serialize(), ["name", "number"]) == ("p-1", Decimal(5))
    dated = Dated(dt.datetime(2026, 1, 2, tzinfo=dt.UTC), ssn="1")
    assert dated._row() == wire.row_key(dated.serialize(), ["when"])
    raw = keyed.serialize()
    assert raw["ssn"]["B"] != b"123-45-6789"
    assert Keyed.from_raw_data(raw).ssn == "123-45-6789"


def test_item_encryptor_and_model_write_the_same_token_and_binding(keyring: fieldcrypt.Keyring) -> None:
    """The ItemEncryptor's index (reusing the encoded plaintext) equals the model's; values cross over."""
    encryptor = ItemEncryptor(
        table="keyed",
        key_attributes=["name", "number"],
        attributes={"ssn": EncryptedField("S", keyring="pii", searchable=True)},
    )
    item = {"name": {"S": "p-1"}, "number": {"N": "5"}, "ssn": {"S": "123-45-6789"}}
    stored = encryptor.encrypt_item(item)
    model = Keyed("p-1", 5, ssn="123-45-6789").serialize()
    assert stored["ssn_bidx"] == model["ssn_bidx"]
    assert Keyed.from_raw_data(stored).ssn == "123-45-6789"
    assert encryptor.decrypt_item(model)["ssn"] == {"S": "123-45-6789"}
    assert values.to_plaintext("S", {"S": "Zoë"}) == "Zoë".encode()
