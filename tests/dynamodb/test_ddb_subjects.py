"""PynamoDB `EncryptedAttribute(..., subject="user_id")`: values under each item's subject key, on moto."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pynamodb.attributes import NumberAttribute, UnicodeAttribute

import fieldcrypt
from ddb_shapes import moto_meta, on_moto
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.pynamodb import EncryptedAttribute, EncryptedModel
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
