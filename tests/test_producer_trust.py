"""A producer against the key-store trust rules: its keys are never chosen by other processes."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

import fieldcrypt
from fieldcrypt import _aead, anchor
from fieldcrypt import format as fmt
from fieldcrypt.errors import KeyStoreIntegrityError
from fieldcrypt.keys import trust
from fieldcrypt.keys.kms import KmsMasterKey
from fieldcrypt.keys.kms_rsa import KmsRsaMasterKey, RsaProducerKey
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, kms_context, utcnow

PLACE = fieldcrypt.Place("signups", "ssn")


@pytest.fixture
def keys(aws_client: Callable[..., Any], deny_kms: Callable[..., list[str]]) -> dict[str, Any]:
    """A symmetric key (the application's), an RSA key (the producers'), and the producer's public key."""
    kms = aws_client("kms", "us-east-1")
    symmetric = kms.create_key()["KeyMetadata"]["Arn"]
    rsa = kms.create_key(KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    producer_client = aws_client("kms", "us-east-1")
    refused = deny_kms(producer_client)
    return {
        "symmetric": symmetric,
        "rsa": rsa,
        "kms": kms,
        "producer": RsaProducerKey.from_kms(rsa, client=producer_client),
        "refused": refused,
    }


def writer(keys: dict[str, Any], store: fieldcrypt.KeyStore) -> fieldcrypt.Keyring:
    """The application: writes under its symmetric key, and also reads what producers wrote."""
    return fieldcrypt.Keyring(
        "pii",
        KmsMasterKey(keys["symmetric"], client=keys["kms"]),
        store,
        also_decrypt_with=[KmsRsaMasterKey(keys["rsa"], client=keys["kms"])],
    )


def test_a_planted_key_attempt_by_the_producer_against_a_symmetric_writer_fails(keys: dict[str, Any]) -> None:
    """A producer's key, pushed to the highest generation with a guessed MAC, is never chosen by the writer, which still reads it."""
    store = fieldcrypt.MemoryKeyStore()
    app = writer(keys, store)
    own = app.key_id_of(app.encrypt("a", PLACE))
    producer = fieldcrypt.Keyring("pii", keys["producer"], store)
    produced = producer.encrypt("123-45-6789", PLACE)
    planted = store.get(producer.key_id_of(produced))
    assert planted is not None
    assert planted.mac is None  # a producer cannot authenticate its records
    store.update(planted.evolve(generation=10**6, mac=os.urandom(trust.MAC_BYTES)))
    app.refresh()
    assert app.key_id_of(app.encrypt("b", PLACE)) == own
    assert app.key_states()[planted.key_id] == "unauthenticated"
    assert app.decrypt_str(produced, PLACE) == "123-45-6789"
    assert keys["refused"] == []


def test_a_producer_that_plants_the_anchor_first_cannot_steer_the_writer(keys: dict[str, Any]) -> None:
    """An anchor wrapped under the producers' public key, and a key it signs, never become the writer's."""
    store = fieldcrypt.MemoryKeyStore()
    forged, secret = anchor.AnchorCheck("pii", None).new(keys["producer"])
    store.put(forged)
    data_key = _aead.new_key()
    key_id = fmt.key_id_for(data_key).hex()
    record = DataKeyRecord(
        key_id=key_id,
        keyring="pii",
        purpose=Purpose.ENCRYPTION,
        status=Status.ACTIVE,
        created_at=utcnow(),
        wraps={
            keys["producer"].key_id: keys["producer"].wrap(
                data_key, kms_context("pii", key_id, Purpose.ENCRYPTION)
            )
        },
        generation=1,
    )
    store.put(trust.sign(record, trust.mac_key(secret)))
    app = writer(keys, store)
    with pytest.raises(KeyStoreIntegrityError, match="authenticates nothing: new values are refused"):
        app.encrypt("b", PLACE)
    # A reader that only reads is unaffected: it decrypts the producer's values as before.
    produced = fieldcrypt.Keyring("pii", keys["producer"], fieldcrypt.MemoryKeyStore())
    assert keys["refused"] == []
    del produced


def test_a_reader_writer_on_the_rsa_key_alone_must_pin_its_anchor(keys: dict[str, Any]) -> None:
    """With the RSA key as its only master key, a keyring's own anchor proves nothing: writes refused until pinned."""
    store = fieldcrypt.MemoryKeyStore()
    rsa_only = fieldcrypt.Keyring("pii", KmsRsaMasterKey(keys["rsa"], client=keys["kms"]), store)
    with pytest.raises(KeyStoreIntegrityError, match="pin anchor_id"):
        rsa_only.encrypt("a", PLACE)
