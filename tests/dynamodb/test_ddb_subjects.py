"""PynamoDB `EncryptedAttribute(..., subject="user_id")` and boto3 `EncryptedField(..., subject="user_id")`:
values under each item's subject key, on moto."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pynamodb.attributes import NumberAttribute, UnicodeAttribute

import fieldcrypt
from ddb_shapes import moto_meta, on_moto
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore


class Note(EncryptedModel):
    Meta = moto_meta("subject_notes")

    note_id = UnicodeAttribute(hash_key=True)
    user_id = NumberAttribute(null=True)
    body = EncryptedAttribute(UnicodeAttribute(), keyring="pii", subject="user_id", null=True)
    shared = EncryptedAttribute(UnicodeAttribute(), keyring="pii", null=True)


@pytest.fixture
def stored(moto_endpoint: str, aws_client: Callable[..., Any]) -> Iterator[fieldcrypt.Keyring]:
    """Keyring "pii" on DynamoDB key stores (subject keys in their own table) and the Note table."""
    client = aws_client("dynamodb", "us-east-1")
    keys = DynamoDBKeyStore(f"keys-{uuid.uuid4().hex[:8]}", client=client)
    subjects = DynamoDBKeyStore(f"subjects-{uuid.uuid4().hex[:8]}", client=client)
    keys.create_table()
    subjects.create_table()
    keyring = fieldcrypt.Keyring(
        "pii", fieldcrypt.LocalMasterKey.generate(), keys, subject_key_store=subjects
    )
    fieldcrypt.register(keyring)
    with on_moto(moto_endpoint, Note):
        yield keyring


def _raw(ddb: Any, note_id: str) -> dict[str, Any]:
    return dict(ddb.get_item(TableName="subject_notes", Key={"note_id": {"S": note_id}})["Item"])


def test_items_are_encrypted_under_their_subjects_key_and_shred_erases_one(
    stored: fieldcrypt.Keyring, ddb: Any
) -> None:
    """Raw items hold ciphertext under each user's key; shredding user 1 fails its items, user 2's read."""
    Note("a", user_id=1, body="alice's note", shared="s").save()
    Note("b", user_id=2, body="bob's note").save()
    raw = _raw(ddb, "a")
    body = bytes(raw["body"]["B"])
    assert b"alice" not in body
    assert body[:21] != bytes(raw["shared"]["B"])[:21]  # not the keyring's shared data key
    assert Note.get("a").body == "alice's note"
    assert [n.body for n in Note.scan() if n.note_id == "b"] == ["bob's note"]
    stored.shred_subject(1)
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        Note.get("a")
    assert Note.get("b").body == "bob's note"


def test_a_value_moved_to_another_subjects_item_fails(stored: fieldcrypt.Keyring, ddb: Any) -> None:
    """User 1's ciphertext put in user 2's item (same attribute; item key rebound) raises DecryptionError."""
    Note("a", user_id=1, body="alice's note").save()
    Note("b", user_id=2, body="bob's note").save()
    raw = _raw(ddb, "a")
    raw["user_id"] = {"N": "2"}  # the item now claims another subject
    ddb.put_item(TableName="subject_notes", Item=raw)
    with pytest.raises(fieldcrypt.DecryptionError):
        Note.get("a")


def test_update_encrypts_under_the_subject_and_a_missing_subject_is_refused(
    stored: fieldcrypt.Keyring, ddb: Any
) -> None:
    """Model.update with .set() seals for the item's subject; an item with no subject cannot be written."""
    note = Note("a", user_id=7, body="first")
    note.save()
    note.update(actions=[Note.body.set("second")])
    assert Note.get("a").body == "second"
    assert b"second" not in bytes(_raw(ddb, "a")["body"]["B"])
    with pytest.raises(ConfigurationError, match="user_id"):
        Note("c", body="no subject").save()


def test_subject_must_name_a_plaintext_attribute() -> None:
    """A subject naming no attribute, or an encrypted one, is refused when the model is defined."""
    with pytest.raises(ConfigurationError, match="plaintext attribute"):

        class Bad(EncryptedModel):
            class Meta:
                table_name = "bad"

            key = UnicodeAttribute(hash_key=True)
            body = EncryptedAttribute(UnicodeAttribute(), keyring="pii", subject="owner")



def test_a_per_subject_attribute_cannot_have_a_blind_index() -> None:
    """A blind index of a per-subject attribute is refused: its tokens would outlive a shred."""
    with pytest.raises(ConfigurationError, match="survive the subject's shred"):

        class Indexed(EncryptedModel):
            class Meta:
                table_name = "indexed"

            key = UnicodeAttribute(hash_key=True)
            user_id = NumberAttribute()
            body = EncryptedAttribute(UnicodeAttribute(), keyring="pii", subject="user_id")
            body_index = BlindIndexAttribute(of="body")

# -- the boto3 item encryptor: the same table and subject, read and written alike --------------

ENCRYPTOR = ItemEncryptor(
    table="subject_notes",
    key_attributes=["note_id"],
    attributes={
        "body": EncryptedField("S", keyring="pii", subject="user_id"),
        "shared": EncryptedField("S", keyring="pii"),
    },
)


def _put(ddb: Any, note_id: str, user: dict[str, str] | None, body: str) -> None:
    item: dict[str, Any] = {"note_id": {"S": note_id}, "body": {"S": body}, "shared": {"S": "s"}}
    if user is not None:
        item["user_id"] = user
    ddb.put_item(TableName="subject_notes", Item=ENCRYPTOR.encrypt_item(item))


def test_item_encryptor_values_are_under_their_subjects_key_and_shred_erases_one(
    stored: fieldcrypt.Keyring, ddb: Any
) -> None:
    """Raw items hold ciphertext under each user's key; shredding user 1 fails its items only."""
    _put(ddb, "a", {"N": "1"}, "alice's note")
    _put(ddb, "b", {"N": "2"}, "bob's note")
    raw_a, raw_b = _raw(ddb, "a"), _raw(ddb, "b")
    body_a, body_b = bytes(raw_a["body"]["B"]), bytes(raw_b["body"]["B"])
    assert b"alice" not in body_a
    assert b"bob" not in body_b
    assert body_a[:21] != body_b[:21]  # two subjects, two keys
    assert body_a[:21] != bytes(raw_a["shared"]["B"])[:21]  # not the keyring's shared data key
    assert ENCRYPTOR.decrypt_item(raw_a)["body"] == {"S": "alice's note"}
    stored.shred_subject(1)
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        ENCRYPTOR.decrypt_item(_raw(ddb, "a"))
    assert ENCRYPTOR.decrypt_item(_raw(ddb, "b"))["body"] == {"S": "bob's note"}
    without_body = {k: v for k, v in _raw(ddb, "a").items() if k != "body"}
    assert ENCRYPTOR.decrypt_item(without_body)["shared"] == {"S": "s"}  # the keyring's own key


def test_item_encryptor_refuses_a_value_moved_to_another_subjects_item(
    stored: fieldcrypt.Keyring, ddb: Any
) -> None:
    """User 1's ciphertext in an item claiming user 2 raises DecryptionError, warm or cold."""
    _put(ddb, "a", {"N": "1"}, "alice's note")
    _put(ddb, "b", {"N": "2"}, "bob's note")
    raw = _raw(ddb, "a")
    ENCRYPTOR.decrypt_item(raw)  # both subjects' keys cached
    ENCRYPTOR.decrypt_item(_raw(ddb, "b"))
    with pytest.raises(fieldcrypt.DecryptionError):
        ENCRYPTOR.decrypt_item(raw | {"user_id": {"N": "2"}})
    with pytest.raises(fieldcrypt.DecryptionError):
        ENCRYPTOR.decrypt_item(raw | {"user_id": {"S": "1"}} | {"body": _raw(ddb, "b")["body"]})


def test_pynamodb_and_the_item_encryptor_read_each_others_subject_values(
    stored: fieldcrypt.Keyring, ddb: Any
) -> None:
    """An encryptor item reads through the model and a model item through the encryptor (subject 5 = "5")."""
    _put(ddb, "a", {"N": "5"}, "from boto3")
    Note("b", user_id=5, body="from pynamodb").save()
    assert Note.get("a").body == "from boto3"
    assert ENCRYPTOR.decrypt_item(_raw(ddb, "b"))["body"] == {"S": "from pynamodb"}
    stored.shred_subject("5")
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        Note.get("a")
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        ENCRYPTOR.decrypt_item(_raw(ddb, "b"))


def test_item_encryptor_refuses_a_missing_or_unusable_subject(stored: fieldcrypt.Keyring, ddb: Any) -> None:
    """No subject attribute on write or read, or a subject of another type, is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="user_id"):
        _put(ddb, "a", None, "no subject")
    with pytest.raises(ConfigurationError, match="string or an integer"):
        _put(ddb, "a", {"BOOL": True}, "bad subject")  # type: ignore[dict-item]
    _put(ddb, "a", {"S": "u-1"}, "kept")
    raw = _raw(ddb, "a")
    del raw["user_id"]
    with pytest.raises(ConfigurationError, match="user_id"):
        ENCRYPTOR.decrypt_item(raw)


def test_item_encryptor_subject_declarations_are_checked() -> None:
    """subject must be a name, cannot go with bound_as or searchable, nor name an encrypted attribute."""
    with pytest.raises(ConfigurationError, match="subject"):
        EncryptedField("S", keyring="pii", subject="")
    with pytest.raises(ConfigurationError, match="bound_as"):
        EncryptedField("S", keyring="pii", subject="user_id", bound_as=("old", "body"))
    with pytest.raises(ConfigurationError, match="searchable"):
        EncryptedField("S", keyring="pii", subject="user_id", searchable=True)
    with pytest.raises(ConfigurationError, match="encrypted"):
        ItemEncryptor(
            table="t",
            key_attributes=["k"],
            attributes={
                "body": EncryptedField("S", keyring="pii", subject="user_id"),
                "user_id": EncryptedField("S", keyring="pii"),
            },
        )
