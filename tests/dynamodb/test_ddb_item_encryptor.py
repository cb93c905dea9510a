"""ItemEncryptor on raw boto3 items: interoperates byte for byte with the PynamoDB adapter, binds
every value to its table, attribute and item key, and refuses what it cannot encrypt honestly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ddb_models import Address, Patient, Visit
from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)

import fieldcrypt
from fieldcrypt import DecryptionError, Place
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.dynamodb import values as ddb_values
from fieldcrypt.format import OVERHEAD
from fieldcrypt.pynamodb.values import codec_for


def patients() -> ItemEncryptor:
    """An item encryptor declaring what ddb_models.Patient declares (same names, types, normalizer)."""
    return ItemEncryptor(
        table="patients",
        key_attributes=("patient_id",),
        attributes={
            "ssn": EncryptedField(
                "S", keyring="pii", index_attribute="ssn_bidx", normalizer=lambda s: s.replace("-", "")
            ),
            "weight": EncryptedField("N", keyring="pii"),
            "scan_image": EncryptedField("B", keyring="pii"),
            "consent": EncryptedField("BOOL", keyring="pii"),
            "address": EncryptedField("M", keyring="pii"),
            "extra": EncryptedField("M", keyring="pii"),
            "visits": EncryptedField("L", keyring="pii"),
            "codes": EncryptedField("L", keyring="pii"),
        },
    )


KEY = {"patient_id": {"S": "p-1"}}
PLAIN: dict[str, Any] = {
    "ssn": {"S": "123-45-6789"},
    "weight": {"N": "72.5"},
    "scan_image": {"B": b"\x00\x01\xff"},
    "consent": {"BOOL": True},
    "address": {
        "M": {"street": {"S": "1 Main St"}, "photo": {"B": b"\x89PNG"}, "tags": {"L": [{"S": "home"}]}}
    },
    "extra": {
        "M": {"nested": {"M": {"deep": {"L": [{"N": "1"}, {"S": "two"}, {"B": b"\x03"}]}}}, "n": {"N": "7"}}
    },
    "visits": {"L": [{"S": "a"}, {"N": "2"}, {"M": {"m": {"B": b"\x04"}}}, {"L": [{"BOOL": True}]}]},
    "codes": {"L": [{"N": "1"}, {"N": "2.5"}, {"N": "-3"}]},
}


@pytest.mark.usefixtures("tables")
def test_item_written_by_pynamodb_decrypts_with_the_item_encryptor(ddb: Any) -> None:
    """A raw boto3 get_item of a PynamoDB-written item decrypts to the plaintext AttributeValues, same tokens."""
    Patient(
        "p-1",
        name="Ada",
        ssn="123-45-6789",
        weight=72.5,
        scan_image=b"\x00\x01\xff",
        consent=True,
        address=Address(street="1 Main St", photo=b"\x89PNG", tags=["home"]),
        extra={"nested": {"deep": [1, "two", b"\x03"]}, "n": 7},
        visits=["a", 2, {"m": b"\x04"}, [True]],
        codes=[1, 2.5, -3],
    ).save()
    raw = ddb.get_item(TableName="patients", Key=KEY, ConsistentRead=True)["Item"]
    assert set(raw["ssn"]) == {"B"}
    assert b"123-45-6789" not in raw["ssn"]["B"]
    decrypted = patients().decrypt_item(raw)
    assert {name: decrypted[name] for name in PLAIN} == PLAIN
    assert decrypted["name"] == {"S": "Ada"}
    assert decrypted["ssn_bidx"] == raw["ssn_bidx"]  # tokens are left as stored
    assert patients().search_tokens("ssn", {"S": "123456789"}) == [raw["ssn_bidx"]["B"]]


@pytest.mark.usefixtures("tables")
def test_item_written_by_the_item_encryptor_reads_through_pynamodb(ddb: Any) -> None:
    """An item put with boto3 after encrypt_item reads back through the model, and Model.lookup finds it."""
    item = patients().encrypt_item({**KEY, "name": {"S": "Ada"}, **PLAIN})
    for name, value in PLAIN.items():
        blob = item[name]["B"]
        assert blob[0] == 1
        assert len(blob) >= OVERHEAD
        assert json.dumps(value, default=repr).encode() not in blob
    assert item["name"] == {"S": "Ada"}
    ddb.put_item(TableName="patients", Item=item)
    got = Patient.get("p-1")
    assert got.ssn == "123-45-6789"
    assert got.weight == 72.5
    assert got.scan_image == b"\x00\x01\xff"
    assert got.consent is True
    assert isinstance(got.address, Address)
    assert got.address.tags == ["home"]
    assert got.extra == {"nested": {"deep": [1, "two", b"\x03"]}, "n": 7}
    assert got.visits == ["a", 2, {"m": b"\x04"}, [True]]
    assert got.codes == [1, 2.5, -3]
    assert [p.patient_id for p in Patient.lookup("ssn", "123-45-6789")] == ["p-1"]


@pytest.mark.usefixtures("tables")
def test_composite_numeric_key_interoperates(ddb: Any) -> None:
    """A hash (N) + range (S) key binds alike on both paths, whatever form the number takes."""
    visits = ItemEncryptor(
        table="visits",
        key_attributes=["clinic", "day"],
        attributes={"diagnosis": EncryptedField("S", keyring="pii")},
    )
    Visit(5, "d1", diagnosis="flu").save()
    raw = ddb.get_item(TableName="visits", Key={"clinic": {"N": "5"}, "day": {"S": "d1"}})["Item"]
    assert visits.decrypt_item(raw)["diagnosis"] == {"S": "flu"}
    ddb.put_item(
        TableName="visits",
        Item=visits.encrypt_item({"clinic": {"N": "5.0"}, "day": {"S": "d2"}, "diagnosis": {"S": "cold"}}),
    )
    assert Visit.get(5, "d2").diagnosis == "cold"


@pytest.mark.parametrize(
    ("inner", "python", "av"),
    [
        (UnicodeAttribute(), "123-45-6789", {"S": "123-45-6789"}),
        (UnicodeAttribute(), "", {"S": ""}),
        (NumberAttribute(), 5, {"N": "5"}),
        (NumberAttribute(), -0.25, {"N": "-0.25"}),
        (NumberAttribute(), 1e20, {"N": "1e+20"}),
        (BinaryAttribute(legacy_encoding=False), b"\x00\xff", {"B": b"\x00\xff"}),
        (BooleanAttribute(), False, {"BOOL": False}),
        (MapAttribute(), {"a": [1, b"\x01"]}, {"M": {"a": {"L": [{"N": "1"}, {"B": b"\x01"}]}}}),
        (ListAttribute(), ["x", {"y": True}], {"L": [{"S": "x"}, {"M": {"y": {"BOOL": True}}}]}),
    ],
)
def test_plaintext_bytes_match_the_pynamodb_codecs(inner: Any, python: Any, av: dict[str, Any]) -> None:
    """Known answers: the item encryptor encrypts exactly the bytes the PynamoDB adapter encrypts."""
    kind = next(iter(av))
    assert ddb_values.to_plaintext(kind, av) == codec_for(inner).to_bytes(python)
    assert ddb_values.from_plaintext(kind, ddb_values.to_plaintext(kind, av)) == av


def test_every_value_is_bound_to_table_attribute_and_item(keyring: fieldcrypt.Keyring) -> None:
    """A ciphertext moved to another item, attribute or table fails opaquely; in place it decrypts."""
    two = ItemEncryptor(
        table="patients",
        key_attributes=("patient_id",),
        attributes={"ssn": EncryptedField("S", keyring="pii"), "email": EncryptedField("S", keyring="pii")},
    )
    item = two.encrypt_item({**KEY, "ssn": {"S": "123-45-6789"}, "email": {"S": "ada@example.com"}})
    assert two.decrypt_item(item)["email"] == {"S": "ada@example.com"}
    assert keyring.decrypt(item["ssn"]["B"], Place("patients", "ssn", "p-1")) == b"123-45-6789"
    attacks = [
        {**item, "patient_id": {"S": "p-2"}},  # copied to another item
        {**item, "ssn": item["email"]},  # swapped between attributes
    ]
    for attack in attacks:
        with pytest.raises(DecryptionError) as caught:
            two.decrypt_item(attack)
        assert "123-45-6789" not in str(caught.value)
        assert "ada@" not in str(caught.value)
    other_table = ItemEncryptor(table="staff", key_attributes=("patient_id",), attributes=two.fields)
    with pytest.raises(DecryptionError):
        other_table.decrypt_item(item)


def test_plaintext_or_tampered_values_are_refused(keyring: fieldcrypt.Keyring) -> None:
    """A plaintext where a ciphertext belongs, a flipped bit, or an authentic value of another type all raise."""
    enc = patients()
    with pytest.raises(DecryptionError):
        enc.decrypt_item({**KEY, "ssn": {"S": "123-45-6789"}})
    item = enc.encrypt_item({**KEY, "ssn": {"S": "123-45-6789"}})
    flipped = bytearray(item["ssn"]["B"])
    flipped[-1] ^= 1
    with pytest.raises(DecryptionError):
        enc.decrypt_item({**item, "ssn": {"B": bytes(flipped)}})
    as_number = ItemEncryptor(
        table="patients",
        key_attributes=("patient_id",),
        attributes={"ssn": EncryptedField("N", keyring="pii")},
    )
    with pytest.raises(DecryptionError):
        as_number.decrypt_item(item)


def test_wrong_kind_null_and_missing_key() -> None:
    """A value of another type raises TypeError naming it; NULL is stored absent; a keyless item is refused."""
    enc = patients()
    with pytest.raises(TypeError, match=r"patients\.ssn: expected a DynamoDB S value"):
        enc.encrypt_item({**KEY, "ssn": {"N": "5"}})
    with pytest.raises(TypeError, match=r"patients\.weight"):
        enc.encrypt_item({**KEY, "weight": {"N": "NaN"}})
    stored = enc.encrypt_item({**KEY, "ssn": {"NULL": True}, "ssn_bidx": {"B": b"stale"}, "name": {"S": "x"}})
    assert stored == {**KEY, "name": {"S": "x"}}
    with pytest.raises(fieldcrypt.ConfigurationError, match="key attribute"):
        enc.encrypt_item({"ssn": {"S": "1"}})
    with pytest.raises(fieldcrypt.ConfigurationError, match="key attribute"):
        enc.decrypt_item({"ssn": {"B": b"\x01" * 60}})
    assert enc.encrypt_item({**KEY, "name": {"S": "x"}}) == {**KEY, "name": {"S": "x"}}


@pytest.mark.usefixtures("keyring")
def test_numbers_keep_their_digits() -> None:
    """An N value round-trips exactly (no float rounding); non-JSON forms are normalised."""
    enc = patients()
    for given, back in [
        ("5.50", "5.50"),
        ("12345678901234567890.123456789", "12345678901234567890.123456789"),
        ("+5", "5"),
        (".5", "0.5"),
    ]:
        item = enc.encrypt_item({**KEY, "weight": {"N": given}})
        assert enc.decrypt_item(item)["weight"] == {"N": back}


def test_declarations_that_cannot_work_are_refused() -> None:
    """Encrypting a key attribute, an unknown kind, a clashing index name or no keyring fail at construction."""
    with pytest.raises(fieldcrypt.ConfigurationError, match="key attribute"):
        ItemEncryptor(
            table="t", key_attributes=("id",), attributes={"id": EncryptedField("S", keyring="pii")}
        )
    with pytest.raises(fieldcrypt.ConfigurationError, match="choose one of"):
        EncryptedField("SS", keyring="pii")
    with pytest.raises(fieldcrypt.ConfigurationError, match="already in use"):
        ItemEncryptor(
            table="t",
            key_attributes=("id",),
            attributes={
                "a": EncryptedField("S", keyring="pii", index_attribute="b"),
                "b": EncryptedField("S", keyring="pii"),
            },
        )
    with pytest.raises(fieldcrypt.ConfigurationError, match="keyring"):
        EncryptedField("S", keyring="")
    with pytest.raises(fieldcrypt.ConfigurationError, match="not a searchable"):
        patients().search_tokens("weight", {"N": "1"})


@pytest.mark.usefixtures("tables")
def test_for_table_reads_the_key_order_from_the_schema(ddb: Any) -> None:
    """for_table takes hash then range from DescribeTable, so its items read through the model."""
    visits = ItemEncryptor.for_table(ddb, "visits", {"diagnosis": EncryptedField("S", keyring="pii")})
    assert visits.key_attributes == ("clinic", "day")
    item = visits.encrypt_item({"day": {"S": "d1"}, "clinic": {"N": "5"}, "diagnosis": {"S": "flu"}})
    ddb.put_item(TableName="visits", Item=item)
    assert Visit.get(5, "d1").diagnosis == "flu"
    swapped = ItemEncryptor(table="visits", key_attributes=("day", "clinic"), attributes=visits.fields)
    ddb.put_item(TableName="visits", Item=swapped.encrypt_item({**item, "diagnosis": {"S": "flu"}}))
    with pytest.raises(DecryptionError):
        Visit.get(5, "d1")  # the order is part of the binding: the reason for_table exists
    with pytest.raises(fieldcrypt.ConfigurationError, match="does not exist"):
        ItemEncryptor.for_table(ddb, "no-such-table", visits.fields)


def test_namespace_binds_items_and_errors_name_the_item(keyring: fieldcrypt.Keyring) -> None:
    """Under namespace "eu", an item copied to the same table of namespace "us" fails, naming the item's key."""
    eu = fieldcrypt.register(
        fieldcrypt.Keyring("pii", keyring.master_key, keyring.key_store, namespace="eu"), replace=True
    )
    enc = ItemEncryptor(
        table="patients",
        key_attributes=("patient_id",),
        attributes={"ssn": EncryptedField("S", keyring="pii")},
    )
    item = enc.encrypt_item({**KEY, "ssn": {"S": "123-45-6789"}})
    assert eu.decrypt(item["ssn"]["B"], Place("patients", "ssn", "p-1")) == b"123-45-6789"
    with pytest.raises(DecryptionError):  # the same keys without the namespace
        keyring.decrypt(item["ssn"]["B"], Place("patients", "ssn", "p-1"))
    fieldcrypt.register(
        fieldcrypt.Keyring("pii", keyring.master_key, keyring.key_store, namespace="us"), replace=True
    )
    with pytest.raises(DecryptionError, match=r"^cannot decrypt patients\.ssn \(row 'p-1'\)$") as caught:
        enc.decrypt_item(item)
    assert "123-45-6789" not in str(caught.value)
