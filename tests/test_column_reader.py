"""A column's per-value reader (fieldcrypt.reading) follows every change the uncached path follows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import Keyring, Place, codecs, reading
from fieldcrypt.errors import DecryptionError, KeyDestroyedError, ValueTypeError
from fieldcrypt.sqlalchemy import Encrypted

COLUMN = Place("users", "ssn")
SSN = "123-45-6789"


class Clock:
    """A hand-moved monotonic clock for the cache's age bound."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _keyring(**options: Any) -> Keyring:
    return Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore(), **options)


def _counting_unwraps(keyring: Keyring) -> list[str]:
    unwraps: list[str] = []
    original = keyring._unwrap

    def counting(record: Any, place: Any = None) -> bytes:
        unwraps.append(record.key_id)
        return original(record, place)

    keyring._unwrap = counting  # type: ignore[method-assign]
    return unwraps


@pytest.fixture
def registered() -> Iterator[Keyring]:
    keyring = fieldcrypt.register(_keyring(), replace=True)
    yield keyring
    fieldcrypt.unregister("pii")


def test_reader_returns_what_decrypt_returns_for_every_codec(registered: Keyring) -> None:
    """Text, integer, date and bytes columns read back exactly the value written, via the reader."""
    for codec, value in (
        (codecs.TextCodec(), SSN),
        (codecs.IntCodec(), 42),
        (codecs.DateCodec(), dt.date(2020, 1, 2)),
        (codecs.BytesCodec(), b"\x00\xff"),
    ):
        read = reading.column_reader("pii", COLUMN, codec)
        blob = registered.encrypt(codec.to_bytes(value), COLUMN)
        assert blob != codec.to_bytes(value)
        assert codec.to_bytes(value) not in blob
        assert read(blob) == read(bytearray(blob)) == read(memoryview(blob)) == value
        assert read(None) is None


def test_reader_refuses_what_decrypt_refuses(registered: Keyring) -> None:
    """Tampered, truncated, moved, str and non-ciphertext values raise the errors decrypt raises."""
    read = reading.column_reader("pii", COLUMN, codecs.TextCodec())
    blob = registered.encrypt(SSN, COLUMN)
    assert read(blob) == SSN  # the column's key is now remembered: the fast path below
    for bad in (blob[:-1] + bytes([blob[-1] ^ 1]), blob[:30], blob[:48], blob[:21]):
        with pytest.raises(DecryptionError) as caught:
            read(bad)
        assert (caught.value.table, caught.value.column) == ("users", "ssn")
        assert SSN not in str(caught.value)
    with pytest.raises(DecryptionError):
        read(registered.encrypt(SSN, Place("users", "email")))
    with pytest.raises(DecryptionError):
        read(SSN)
    with pytest.raises(fieldcrypt.NotCiphertextError):
        read(b"123-45-6789 is plaintext, long enough to look like a value....")
    with pytest.raises(ValueTypeError):
        read(registered.encrypt(b"\xff\xfe", COLUMN))


def test_reader_follows_a_replaced_keyring(registered: Keyring) -> None:
    """register(..., replace=True) takes effect on the next value: old keys refused, new ones read."""
    read = reading.column_reader("pii", COLUMN, codecs.TextCodec())
    old_blob = registered.encrypt(SSN, COLUMN)
    assert read(old_blob) == SSN
    replacement = fieldcrypt.register(_keyring(), replace=True)
    with pytest.raises(DecryptionError):
        read(old_blob)
    assert read(replacement.encrypt("987-65-4321", COLUMN)) == "987-65-4321"
    fieldcrypt.unregister("pii")
    with pytest.raises(fieldcrypt.ConfigurationError):
        read(old_blob)


def test_reader_follows_a_namespace_change(registered: Keyring) -> None:
    """A keyring re-registered with a namespace reads its namespaced values and refuses the 0.1 ones."""
    read = reading.column_reader("pii", COLUMN, codecs.TextCodec())
    plain_blob = registered.encrypt(SSN, COLUMN)
    assert read(plain_blob) == SSN
    tenant = Keyring(
        "pii", registered.master_key, registered.key_store, cache=registered.cache, namespace="tenant-a"
    )
    fieldcrypt.register(tenant, replace=True)
    with pytest.raises(DecryptionError):
        read(plain_blob)  # same data key, same cache: only the namespace in the associated data differs
    namespaced = tenant.encrypt(SSN, COLUMN)
    assert namespaced[:21] == plain_blob[:21]
    assert read(namespaced) == SSN


def test_reader_reads_values_of_every_rotated_key(registered: Keyring) -> None:
    """After a rotation the reader reads old and new keys' values, each unwrapped once."""
    read = reading.column_reader("pii", COLUMN, codecs.TextCodec())
    first = registered.encrypt(SSN, COLUMN)
    registered.rotate()
    second = registered.encrypt("987-65-4321", COLUMN)
    assert first[:21] != second[:21]
    unwraps = _counting_unwraps(registered)
    for _ in range(3):
        assert read(first) == SSN
        assert read(second) == "987-65-4321"
    assert unwraps == []  # both were in the cache: made here


def test_reader_forgets_cleared_and_destroyed_keys(registered: Keyring) -> None:
    """cache.clear() makes the next read unwrap again; a destroyed, forgotten key is refused."""
    read = reading.column_reader("pii", COLUMN, codecs.TextCodec())
    blob = registered.encrypt(SSN, COLUMN)
    assert read(blob) == SSN
    unwraps = _counting_unwraps(registered)
    registered.cache.clear()
    assert read(blob) == SSN
    assert read(blob) == SSN
    assert len(unwraps) == 1
    (record,) = registered.records(fieldcrypt.Purpose.ENCRYPTION)
    registered.key_store.update(record.evolve(status=fieldcrypt.Status.DESTROYED, wraps={}))
    registered.forget(record)
    with pytest.raises(KeyDestroyedError):
        read(blob)


def test_reader_keeps_the_cache_use_and_age_bounds() -> None:
    """A remembered key past max_uses or max_age is unwrapped again before the next value is read."""
    clock = Clock()
    cache = fieldcrypt.DataKeyCache(max_uses=5, max_age=timedelta(minutes=10), clock=clock)
    keyring = fieldcrypt.register(_keyring(cache=cache), replace=True)
    try:
        read = reading.column_reader("pii", COLUMN, codecs.TextCodec())
        blob = keyring.encrypt(SSN, COLUMN)
        unwraps = _counting_unwraps(keyring)
        for _ in range(12):
            assert read(blob) == SSN
        assert len(unwraps) == 2  # 12 reads + 1 encryption, 5 uses per unwrap
        clock.now += 601
        assert read(blob) == SSN
        assert len(unwraps) == 3
    finally:
        fieldcrypt.unregister("pii")


def test_reader_remembers_a_bounded_number_of_keys(registered: Keyring) -> None:
    """Values under more keys than MAX_KEYS_PER_COLUMN still read; the memo stays bounded."""
    read = reading.column_reader("pii", COLUMN, codecs.TextCodec())
    blobs = []
    for n in range(reading.MAX_KEYS_PER_COLUMN + 3):
        registered.rotate()
        blobs.append((registered.encrypt(str(n), COLUMN), str(n)))
    for blob, value in blobs + blobs[:2]:
        assert read(blob) == value
    assert reading.MAX_KEYS_PER_COLUMN == 64


def test_result_processors_read_through_the_reader(registered: Keyring) -> None:
    """Binary and text columns' lean processors decrypt, refuse a str and follow a replacement."""
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="pii")),
        sa.Column("ssn_text", Encrypted(sa.String(11), keyring="pii", storage="text")),
    )
    dialect = sa.create_engine("sqlite://").dialect
    for name in ("ssn", "ssn_text"):
        column_type = table.c[name].type
        stored = column_type.bind_processor(dialect)(SSN)
        assert stored is not None
        assert SSN not in str(stored)
        read = column_type.result_processor(dialect, None)
        assert read(bytes(stored) if name == "ssn" else stored) == SSN
        assert read(None) is None
        with pytest.raises(DecryptionError):
            read("not a ciphertext" if name == "ssn" else "!!not base64!!")
    read = table.c.ssn.type.result_processor(dialect, None)
    before = bytes(table.c.ssn.type.bind_processor(dialect)(SSN))
    fieldcrypt.register(_keyring(), replace=True)
    with pytest.raises(DecryptionError):
        read(before)
    assert read(bytes(table.c.ssn.type.bind_processor(dialect)(SSN))) == SSN
