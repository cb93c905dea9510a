"""The boto3 item encryptor's failure paths quote no plaintext: KMS refused, a value of the wrong
DynamoDB type, plaintext read where a ciphertext belongs."""

from __future__ import annotations

import pytest
from leak_models import NOTE, PLAINTEXTS, SSN, RefusingMasterKey
from leak_scanner import Secrets

import fieldcrypt
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor


def _encryptor(keyring: fieldcrypt.Keyring) -> ItemEncryptor:
    return ItemEncryptor(
        table="patients",
        key_attributes=["patient_id"],
        attributes={
            "ssn": EncryptedField("S", keyring=keyring, searchable=True),
            "note": EncryptedField("S", keyring=keyring),
        },
    )


def _item(**values: dict[str, object]) -> dict[str, dict[str, object]]:
    return {"patient_id": {"S": "p-1"}, "ssn": {"S": SSN}, "note": {"S": NOTE}} | values


def test_refused_kms_while_encrypting_an_item_leaks_nothing(secrets: Secrets) -> None:
    """KMS refusing Encrypt for an item: KeyAccessError, no value of the item in the error chain."""
    keyring = fieldcrypt.Keyring("pii", RefusingMasterKey(), fieldcrypt.MemoryKeyStore())
    with pytest.raises(fieldcrypt.KeyAccessError) as caught:
        _encryptor(keyring).encrypt_item(_item())
    secrets.plaintext(*PLAINTEXTS).assert_exception_clean(caught.value)


def test_wrong_type_in_an_item_names_types_only(
    master_key: fieldcrypt.LocalMasterKey, secrets: Secrets
) -> None:
    """A number where a string is declared: TypeError without the value."""
    keyring = fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore())
    number = str(4700 + 11)  # computed, so the traceback's source lines do not spell it
    with pytest.raises(TypeError, match=r"patients.note: expected a DynamoDB S value") as caught:
        _encryptor(keyring).encrypt_item(_item(note={"N": number}))
    secrets.plaintext(*PLAINTEXTS, number).keyring(keyring).assert_exception_clean(caught.value)


def test_plaintext_where_a_ciphertext_belongs_is_not_quoted(
    master_key: fieldcrypt.LocalMasterKey, secrets: Secrets
) -> None:
    """An item still holding plaintext (as a string or as bytes): DecryptionError, the value not quoted."""
    keyring = fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore())
    encryptor = _encryptor(keyring)
    for stored in ({"S": SSN}, {"B": SSN.encode() + NOTE.encode()}):
        with pytest.raises(fieldcrypt.DecryptionError) as caught:
            encryptor.decrypt_item(_item(ssn=stored, note={"NULL": True}))
        secrets.plaintext(*PLAINTEXTS).assert_exception_clean(caught.value)
