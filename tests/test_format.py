"""Format v1: exact bytes, sizes, and an independent decryption that follows docs/format.md."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place

SSN = "123-45-6789"
KAT_KEY_ID = "b248e8ee3ec2e316d6abb124f8d3f6f67cb2777d"
KAT_BLOB = (
    "01b248e8ee3ec2e316d6abb124f8d3f6f67cb2777d6465666768696a6b6c6d6e6f"
    "7929ed4b4ddc7ba8095a6668f69ac5420e026e3095c2635c013c90"
)


def spec_place(table: str, column: str) -> bytes:
    """Place encoding exactly as written in docs/format.md (no row)."""
    t, c = table.encode(), column.encode()
    return struct.pack(">H", len(t)) + t + struct.pack(">H", len(c)) + c + b"\x00"


def spec_decrypt(data_key: bytes, blob: bytes, table: str, column: str) -> bytes:
    """Decrypt a v1 value using only the written spec and a standard AES-GCM."""
    version, key_id, nonce, body = blob[0], blob[1:21], blob[21:33], blob[33:]
    assert version == 1
    assert key_id == hmac.new(data_key, b"fieldcrypt/v1/key-id", hashlib.sha256).digest()[:20]
    return AESGCM(data_key).decrypt(nonce, body, blob[:21] + spec_place(table, column))


def test_known_answer_vector_decrypts() -> None:
    """A value built by hand from the spec, with a fixed key and nonce, decrypts through a keyring."""
    data_key = bytes(range(32))
    key_id = hmac.new(data_key, b"fieldcrypt/v1/key-id", hashlib.sha256).digest()[:20]
    nonce = bytes(range(100, 112))
    header = b"\x01" + key_id
    blob = header + nonce + AESGCM(data_key).encrypt(nonce, SSN.encode(), header + spec_place("users", "ssn"))
    # Pinned bytes (also printed in docs/format.md): any change to layout or AAD breaks this.
    assert key_id.hex() == KAT_KEY_ID
    assert blob.hex() == KAT_BLOB

    master = fieldcrypt.LocalMasterKey(bytes(range(1, 33)))
    store = fieldcrypt.MemoryKeyStore()
    keyring = Keyring("pii", master, store)
    record = fieldcrypt.DataKeyRecord(
        key_id=key_id.hex(),
        keyring="pii",
        purpose=fieldcrypt.Purpose.ENCRYPTION,
        status=fieldcrypt.Status.ACTIVE,
        created_at=fieldcrypt.keys.record.utcnow(),
        wraps={
            master.key_id: master.wrap(
                data_key,
                fieldcrypt.keys.record.kms_context("pii", key_id.hex(), fieldcrypt.Purpose.ENCRYPTION),
            )
        },
    )
    store.put(record)
    assert keyring.decrypt_str(blob, fieldcrypt.Place("users", "ssn")) == SSN


def test_keyring_output_follows_the_spec(local_keyring: Keyring) -> None:
    """What a keyring writes decrypts with the spec alone, given the unwrapped data key."""
    blob = local_keyring.encrypt(SSN, fieldcrypt.Place("users", "ssn"))
    record = local_keyring.key_store.get(local_keyring.key_id_of(blob))
    assert record is not None
    data_key = local_keyring.master_key.unwrap(
        record.wraps[local_keyring.master_key.key_id],
        {
            "fieldcrypt:keyring": "pii",
            "fieldcrypt:data-key-id": record.key_id,
            "fieldcrypt:purpose": "encryption",
        },
    )
    assert spec_decrypt(data_key, blob, "users", "ssn") == SSN.encode()


def test_ssn_sizes(local_keyring: Keyring) -> None:
    """An 11-byte SSN takes 60 bytes in binary and 80 characters as text."""
    blob = local_keyring.encrypt(SSN, fieldcrypt.Place("users", "ssn"))
    assert len(blob) == 60 == len(SSN) + fmt.OVERHEAD
    text = fmt.to_text(blob)
    assert len(text) == 80
    assert fmt.from_text(text) == blob


def test_row_key_encoding_is_typed_and_injective() -> None:
    """Row keys of different types or splits never encode alike."""
    from fieldcrypt.place import encode_row_key

    encodings = [
        encode_row_key(1),
        encode_row_key("1"),
        encode_row_key(b"1"),
        encode_row_key(("a", "bc")),
        encode_row_key(("ab", "c")),
        encode_row_key(("abc",)),
    ]
    assert len(set(encodings)) == len(encodings)
    assert encode_row_key(("abc",)) == encode_row_key("abc")


def test_text_form_rejects_garbage() -> None:
    """Non-base64 text is refused as malformed."""
    with pytest.raises(fmt.MalformedCiphertext):
        fmt.from_text("not base64!")
    assert base64.b64decode(fmt.to_text(b"\x01abc")) == b"\x01abc"


def test_docs_walkthrough_decrypts_a_stored_value_without_fieldcrypt(
    kms_key: str, aws_client: Any, sqlite_engine: sa.Engine
) -> None:
    """docs/format.md's steps: key-store row -> KMS Decrypt (as `aws kms decrypt`) -> AES-GCM."""
    kms = aws_client("kms", "us-east-1")
    store = fieldcrypt.SqlKeyStore(sqlite_engine)
    store.create_table()
    blob = Keyring("pii", fieldcrypt.KmsMasterKey(kms_key, client=kms), store).encrypt(
        SSN, fieldcrypt.Place("users", "ssn")
    )
    # Step 1: the data key id is bytes 1..21 of the value; its row holds the wrapped key.
    key_id = blob[1:21].hex()
    with sqlite_engine.connect() as conn:
        wraps = json.loads(
            conn.execute(
                sa.text("select wraps from fieldcrypt_keys where key_id = :k"), {"k": key_id}
            ).scalar_one()
        )
    # Step 2: exactly the parameters of the documented `aws kms decrypt` command.
    data_key = kms.decrypt(
        KeyId=kms_key,
        CiphertextBlob=base64.b64decode(wraps[kms_key]),
        EncryptionContext={
            "fieldcrypt:keyring": "pii",
            "fieldcrypt:data-key-id": key_id,
            "fieldcrypt:purpose": "encryption",
        },
    )["Plaintext"]
    # Step 3: any AES-GCM.
    assert spec_decrypt(data_key, blob, "users", "ssn") == SSN.encode()


def test_place_encoding_vectors_for_decimal_composite_uuid_and_schema_keys() -> None:
    """Pinned place bytes (docs/format.md): Decimal parts are str(normalize()), composite keys keep key order, UUIDs are 16 bytes, schema.table is the table name."""
    decimal_and_text = Place("t", "c", (Decimal("100.00"), "ab")).encoded
    assert decimal_and_text == (
        b"\x00\x01t\x00\x01c" + b"\x01\x00\x02" + b"d\x00\x00\x00\x041E+2" + b"s\x00\x00\x00\x02ab"
    )
    assert Place("t", "c", Decimal("5")).encoded == Place("t", "c", Decimal("5.00")).encoded
    assert Place("s.t", "c", uuid.UUID(int=1)).encoded == (
        b"\x00\x03s.t\x00\x01c" + b"\x01\x00\x01" + b"u\x00\x00\x00\x10" + (1).to_bytes(16, "big")
    )
    assert (
        Place("t", "c").encoded == b"\x00\x01t\x00\x01c\x00"
    )  # the "no row" byte, also in blind-index input
