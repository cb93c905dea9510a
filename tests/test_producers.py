"""Write-only producers: an RSA KMS key's public half wraps data keys; only KMS Decrypt reads them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import fieldcrypt
from fieldcrypt.keys.kms import KmsMasterKey
from fieldcrypt.keys.kms_rsa import KmsRsaMasterKey, RsaProducerKey
from fieldcrypt.keys.record import Purpose

PLACE = fieldcrypt.Place("users", "ssn")


def producer_keyring(arn: str, client: Any, store: fieldcrypt.KeyStore) -> fieldcrypt.Keyring:
    return fieldcrypt.Keyring("pii", RsaProducerKey.from_kms(arn, client=client), store)


def reader_keyring(arn: str, client: Any, store: fieldcrypt.KeyStore) -> fieldcrypt.Keyring:
    return fieldcrypt.Keyring(
        "pii", KmsRsaMasterKey(arn, region=client.meta.region_name, client=client), store
    )


def test_producer_writes_reader_reads_producer_never_calls_decrypt(
    rsa_mrk: dict[str, str],
    aws_client: Callable[..., Any],
    deny_kms: Callable[..., list[str]],
    request_log: Any,
) -> None:
    """A producer with no kms:Decrypt (enforced) writes with one GetPublicKey; the reader decrypts every value."""
    store = fieldcrypt.MemoryKeyStore()
    client = request_log.attach(aws_client("kms", "us-east-1"))
    refused = deny_kms(client)
    producer = producer_keyring(rsa_mrk["us-east-1"], client, store)
    blobs = [producer.encrypt(f"123-45-{i:04d}", PLACE) for i in range(50)]
    assert refused == []
    assert request_log.operations() == ["GetPublicKey"]
    reader = reader_keyring(rsa_mrk["us-east-1"], aws_client("kms", "us-east-1"), store)
    assert [reader.decrypt_str(b, PLACE) for b in blobs] == [f"123-45-{i:04d}" for i in range(50)]
    assert all(b"123-45" not in b for b in blobs)


def test_producer_cannot_read_its_own_values_now_or_after_restart(
    rsa_mrk: dict[str, str], aws_client: Callable[..., Any], deny_kms: Callable[..., list[str]]
) -> None:
    """Decrypt in a producer raises KeyAccessError before any KMS call, in the writing process and a new one."""
    store = fieldcrypt.MemoryKeyStore()
    client = aws_client("kms", "us-east-1")
    refused = deny_kms(client)
    producer = producer_keyring(rsa_mrk["us-east-1"], client, store)
    blob = producer.encrypt("123-45-6789", PLACE)
    message = "write-only producer .* cannot decrypt, not even its own values"
    with pytest.raises(fieldcrypt.KeyAccessError, match=message) as caught:
        producer.decrypt(blob, PLACE)
    assert caught.value.code == "WriteOnlyProducer"
    restarted = producer_keyring(rsa_mrk["us-east-1"], client, store)
    with pytest.raises(fieldcrypt.KeyAccessError, match=message):
        restarted.decrypt(blob, PLACE)
    with pytest.raises(fieldcrypt.KeyAccessError, match="cannot unwrap"):
        restarted.master_key.unwrap(next(iter(store.list("pii")[0].wraps.values())), {})
    assert refused == []  # refused in fieldcrypt itself, not by KMS


def test_producer_uses_only_keys_it_made_in_this_process(
    rsa_mrk: dict[str, str], kms_key: str, aws_client: Callable[..., Any], deny_kms: Callable[..., list[str]]
) -> None:
    """An active key in the store (the application's) is never chosen by a producer; a restarted producer makes a new one."""
    store = fieldcrypt.MemoryKeyStore()
    kms = aws_client("kms", "us-east-1")
    app = fieldcrypt.Keyring(
        "pii",
        KmsMasterKey(kms_key, client=kms),
        store,
        also_decrypt_with=[KmsRsaMasterKey(rsa_mrk["us-east-1"], client=kms)],
    )
    apps_key = app.current_key_id()
    client = aws_client("kms", "us-east-1")
    deny_kms(client)
    first = producer_keyring(rsa_mrk["us-east-1"], client, store)
    blob = first.encrypt("a", PLACE)
    assert first.key_id_of(blob) != apps_key
    assert first.key_id_of(first.encrypt("b", PLACE)) == first.key_id_of(blob)  # kept while fresh
    second = producer_keyring(rsa_mrk["us-east-1"], client, store)
    assert second.key_id_of(second.encrypt("c", PLACE)) not in {apps_key, first.key_id_of(blob)}
    assert app.decrypt_str(blob, PLACE) == "a"


def test_producer_makes_a_new_key_when_its_cached_one_expires(
    rsa_mrk: dict[str, str], aws_client: Callable[..., Any]
) -> None:
    """Past the cache's max_uses the producer cannot reload its key (no Decrypt), so it makes another."""
    store = fieldcrypt.MemoryKeyStore()
    master = RsaProducerKey.from_kms(rsa_mrk["us-east-1"], client=aws_client("kms", "us-east-1"))
    producer = fieldcrypt.Keyring("pii", master, store, cache=fieldcrypt.DataKeyCache(max_uses=3))
    ids = {producer.key_id_of(producer.encrypt("x", PLACE)) for _ in range(7)}
    assert len(ids) >= 3  # 7 values, at most 3 uses of a cached key each
    assert ids == {r.key_id for r in store.list("pii", Purpose.ENCRYPTION)}


def test_producer_refuses_blind_indexes_and_search(
    rsa_mrk: dict[str, str], aws_client: Callable[..., Any]
) -> None:
    """No blind-index key in a producer: computing a token or searching raises KeyAccessError, and no index key is made."""
    store = fieldcrypt.MemoryKeyStore()
    producer = producer_keyring(rsa_mrk["us-east-1"], aws_client("kms", "us-east-1"), store)
    with pytest.raises(fieldcrypt.KeyAccessError, match="cannot compute blind indexes"):
        producer.blind_index("123-45-6789", PLACE)
    with pytest.raises(fieldcrypt.KeyAccessError, match="cannot search"):
        producer.blind_index_candidates("123-45-6789", PLACE)
    producer.warm_up()  # makes the encryption key only
    assert store.list("pii", Purpose.BLIND_INDEX) == []


def test_multi_region_rsa_key_read_through_the_local_replica(
    rsa_mrk: dict[str, str], aws_client: Callable[..., Any], request_log: Any
) -> None:
    """A us-east-1 producer's values decrypt in us-west-2 through the replica; every reader request names us-west-2."""
    store = fieldcrypt.MemoryKeyStore()
    producer = producer_keyring(rsa_mrk["us-east-1"], aws_client("kms", "us-east-1"), store)
    blob = producer.encrypt("123-45-6789", PLACE)
    west = request_log.attach(aws_client("kms", "us-west-2"))
    reader = fieldcrypt.Keyring(
        "pii", KmsRsaMasterKey(rsa_mrk["us-east-1"], region="us-west-2", client=west), store
    )
    assert reader.decrypt_str(blob, PLACE) == "123-45-6789"
    assert request_log.operations() == ["Decrypt"]
    assert all(region == "us-west-2" for _, region, _ in request_log.calls)
    assert all(":us-west-2:" in arn for _, _, arns in request_log.calls for arn in arns)


def test_a_wrap_moved_to_another_record_fails_to_unwrap(
    rsa_mrk: dict[str, str], aws_client: Callable[..., Any]
) -> None:
    """The context hash inside the OAEP block binds a wrap to its record: swapped copies raise DecryptionError."""
    store = fieldcrypt.MemoryKeyStore()
    producer = fieldcrypt.Keyring(
        "pii",
        RsaProducerKey.from_kms(rsa_mrk["us-east-1"], client=aws_client("kms", "us-east-1")),
        store,
        cache=fieldcrypt.DataKeyCache(max_uses=1),
    )
    first, second = producer.encrypt("a", PLACE), producer.encrypt("b", PLACE)
    one, two = (store.get(producer.key_id_of(b)) for b in (first, second))
    assert one is not None
    assert two is not None
    store.update(one.evolve(wraps=two.wraps))  # a DBA swaps the wrapped copies
    reader = reader_keyring(rsa_mrk["us-east-1"], aws_client("kms", "us-east-1"), store)
    with pytest.raises(fieldcrypt.DecryptionError):
        reader.decrypt(first, PLACE)
    assert reader.decrypt_str(second, PLACE) == "b"


def test_keys_that_do_not_fit_are_refused_at_construction(
    aws_client: Callable[..., Any], kms_key: str, tmp_path: Path
) -> None:
    """Symmetric keys, RSA-2048, non-RSA files, missing files and a single-region ARN from elsewhere: clear errors."""
    kms = aws_client("kms", "us-east-1")
    with pytest.raises(
        fieldcrypt.ConfigurationError,
        match=r"is SYMMETRIC_DEFAULT .*; a producer needs an RSA_3072 or RSA_4096",
    ):
        RsaProducerKey.from_kms(kms_key, client=kms)
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(
        fieldcrypt.ConfigurationError, match="RSA-2048; fieldcrypt wraps under RSA_3072 or RSA_4096"
    ):
        RsaProducerKey(kms_key, pem)
    with pytest.raises(fieldcrypt.ConfigurationError, match="unusable: not a DER or PEM public key"):
        RsaProducerKey(kms_key, b"not a key")
    with pytest.raises(fieldcrypt.ConfigurationError, match="cannot read public key file"):
        RsaProducerKey.from_file(tmp_path / "missing.pem", kms_key)
    with pytest.raises(fieldcrypt.ConfigurationError, match="not a multi-region key"):
        RsaProducerKey(kms_key, pem, region="us-west-2")
    big = rsa.generate_private_key(public_exponent=65537, key_size=3072).public_key()
    der = big.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "public.der").write_bytes(der)
    producer = RsaProducerKey.from_file(tmp_path / "public.der", kms_key)
    assert producer.bits == 3072
    with pytest.raises(fieldcrypt.ConfigurationError, match="cannot also decrypt"):
        fieldcrypt.Keyring(
            "pii",
            producer,
            fieldcrypt.MemoryKeyStore(),
            also_decrypt_with=[fieldcrypt.LocalMasterKey.generate()],
        )
