"""Per-column reads (fieldcrypt.reading), writes (fieldcrypt.writing) and tokens (fieldcrypt.indexing)
follow every change the uncached paths follow."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import fieldcrypt
from fieldcrypt import Keyring, Place, _aead, codecs, index_records, indexing, reading, writing
from fieldcrypt import format as fmt
from fieldcrypt.column import Sealed
from fieldcrypt.errors import (
    ConfigurationError,
    DecryptionError,
    KeyAccessError,
    KeyDestroyedError,
    ValueTypeError,
)
from fieldcrypt.keyring import BLIND_INDEX_LABEL
from fieldcrypt.keys.kms_rsa import RsaProducerKey
from fieldcrypt.sqlalchemy import Encrypted, execute_verified
from fieldcrypt.sqlalchemy import blind_index as sql_blind_index

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

    def counting(record: Any, place: Any = None, **options: Any) -> bytes:
        if record.purpose is not fieldcrypt.Purpose.ANCHOR:  # a cleared cache reopens it too: not counted
            unwraps.append(record.key_id)
        return original(record, place, **options)

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


# -- writes ------------------------------------------------------------------------------------


def _key_ids(blobs: list[bytes]) -> list[str]:
    """The data key each value names, in order, without repeats."""
    ids: list[str] = []
    for blob in blobs:
        if not ids or ids[-1] != Keyring.key_id_of(blob):
            ids.append(Keyring.key_id_of(blob))
    return ids


def test_writer_writes_what_encrypt_writes(registered: Keyring) -> None:
    """Each value is a v1 ciphertext under the current key with a fresh nonce, opening at its place only."""
    write = writing.column_writer("pii", COLUMN)
    blobs = [write(SSN.encode()) for _ in range(200)]
    current = registered._current
    assert current is not None
    for blob in blobs:
        assert SSN.encode() not in blob
        assert blob[:21] == current.header
        assert len(blob) == len(registered.encrypt(SSN, COLUMN)) == 49 + len(SSN)
        assert registered.decrypt(blob, COLUMN) == SSN.encode()
    assert len({blob[21:33] for blob in blobs}) == 200  # nonces
    with pytest.raises(DecryptionError):
        registered.decrypt(blobs[0], Place("users", "email"))
    with pytest.raises(DecryptionError):
        registered.decrypt(blobs[0], Place("users", "ssn", 7))


def test_writer_follows_a_replaced_keyring_and_namespace(registered: Keyring) -> None:
    """register(..., replace=True) takes effect on the next value written, namespace included."""
    write = writing.column_writer("pii", COLUMN)
    plain_blob = write(SSN.encode())
    tenant = Keyring(
        "pii", registered.master_key, registered.key_store, cache=registered.cache, namespace="tenant-a"
    )
    fieldcrypt.register(tenant, replace=True)
    namespaced = write(SSN.encode())
    assert tenant.decrypt(namespaced, COLUMN) == SSN.encode()
    with pytest.raises(DecryptionError):
        registered.decrypt(namespaced, COLUMN)
    with pytest.raises(DecryptionError):
        tenant.decrypt(plain_blob, COLUMN)
    other = fieldcrypt.register(_keyring(), replace=True)
    assert other.decrypt(write(SSN.encode()), COLUMN) == SSN.encode()
    fieldcrypt.unregister("pii")
    with pytest.raises(ConfigurationError):
        write(SSN.encode())


def test_writer_keeps_the_per_key_budget_and_rotation() -> None:
    """rotate_after_encryptions=5 gives a new key at least every 5 values; rotate() moves the next value."""
    keyring = fieldcrypt.register(_keyring(rotate_after_encryptions=5), replace=True)
    try:
        write = writing.column_writer("pii", COLUMN)
        blobs = [write(str(n).encode()) for n in range(23)]
        assert len(_key_ids(blobs)) >= 5  # 23 values, at most 5 under one key
        for n, blob in enumerate(blobs):
            assert keyring.decrypt(blob, COLUMN) == str(n).encode()
        keyring.rotate()
        assert _key_ids([blobs[-1], write(b"after")])[-1] == keyring._current.record.key_id  # type: ignore[union-attr]
    finally:
        fieldcrypt.unregister("pii")


def test_writer_forgets_cleared_and_destroyed_keys(registered: Keyring) -> None:
    """cache.clear() makes the next write unwrap again; a destroyed, forgotten key is never written under."""
    write = writing.column_writer("pii", COLUMN)
    first = write(SSN.encode())
    unwraps = _counting_unwraps(registered)
    registered.cache.clear()
    again = [write(SSN.encode()) for _ in range(3)]
    assert len(unwraps) == 1
    assert _key_ids([first, *again]) == [Keyring.key_id_of(first)]
    (record,) = registered.records(fieldcrypt.Purpose.ENCRYPTION)
    registered.key_store.update(record.evolve(status=fieldcrypt.Status.DESTROYED, wraps={}))
    registered.forget(record)
    after = write(SSN.encode())
    assert after[:21] != first[:21]
    assert registered.decrypt(after, COLUMN) == SSN.encode()
    with pytest.raises(KeyDestroyedError):
        registered.decrypt(first, COLUMN)


def test_writer_keeps_the_cache_use_bound() -> None:
    """A current key past the cache's max_uses is unwrapped again before the next value is sealed."""
    keyring = fieldcrypt.register(_keyring(cache=fieldcrypt.DataKeyCache(max_uses=5)), replace=True)
    try:
        write = writing.column_writer("pii", COLUMN)
        write(SSN.encode())
        unwraps = _counting_unwraps(keyring)
        blobs = [write(SSN.encode()) for _ in range(12)]
        assert len(unwraps) == 2  # 13 values, 5 uses per unwrap
        assert len(_key_ids(blobs)) == 1
        assert all(keyring.decrypt(blob, COLUMN) == SSN.encode() for blob in blobs)
    finally:
        fieldcrypt.unregister("pii")


def test_writer_keeps_the_cache_age_bound_on_its_own_clock() -> None:
    """With a cache on another clock every value goes through encrypt, so its age bound holds."""
    clock = Clock()
    cache = fieldcrypt.DataKeyCache(max_age=timedelta(minutes=10), clock=clock)
    keyring = fieldcrypt.register(_keyring(cache=cache), replace=True)
    try:
        write = writing.column_writer("pii", COLUMN)
        write(SSN.encode())
        unwraps = _counting_unwraps(keyring)
        write(SSN.encode())
        clock.now += 601
        blob = write(SSN.encode())
        assert len(unwraps) == 1
        assert keyring.decrypt(blob, COLUMN) == SSN.encode()
    finally:
        fieldcrypt.unregister("pii")


def test_counted_values_written_through_a_column_writer_are_all_counted() -> None:
    """A writer that kept a key before counting began goes back through the counting encrypt."""
    from metrics_helpers import attrs, recording

    name = f"m{uuid.uuid4().hex[:12]}"
    keyring = Keyring(name, fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    fieldcrypt.register(keyring)
    try:
        write = writing.column_writer(name, COLUMN)
        write(SSN.encode())
        write(SSN.encode())  # kept, nothing counting yet
        with recording() as recorder:
            before = recorder.collect()
            blobs = [write(SSN.encode()) for _ in range(4)]
            assert recorder.delta(before)["fieldcrypt.values.encrypted"] == {attrs(keyring=name): 4}
        assert all(keyring.decrypt(blob, COLUMN) == SSN.encode() for blob in blobs)
    finally:
        fieldcrypt.unregister(name)


def test_bind_processors_write_through_the_writer(registered: Keyring) -> None:
    """Binary and text columns store ciphertext that opens at their place, keep the String(n) bound
    and the type check, refuse a malformed Sealed, and follow a replaced keyring."""
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="pii")),
        sa.Column("ssn_text", Encrypted(sa.String(11), keyring="pii", storage="text")),
        sa.Column("note", Encrypted(sa.Text, keyring="pii")),
    )
    dialect = sa.create_engine("sqlite://").dialect
    for name in ("ssn", "ssn_text", "note"):
        write = table.c[name].type.bind_processor(dialect)
        stored = write(SSN)
        blob = fmt.from_text(stored) if name == "ssn_text" else bytes(stored)
        assert SSN.encode() not in blob
        assert registered.decrypt(blob, Place("users", name)) == SSN.encode()
        assert write(None) is None
        with pytest.raises(TypeError, match=f"users.{name}"):
            write(42)
        assert write(Sealed(blob)) == stored
        with pytest.raises(ConfigurationError):
            write(Sealed(b"not a ciphertext"))
    write = table.c.ssn.type.bind_processor(dialect)
    with pytest.raises(fieldcrypt.InvalidValueError):
        write("123-45-67890")

    class Str(str):
        pass

    assert registered.decrypt(bytes(write(Str(SSN))), Place("users", "ssn")) == SSN.encode()
    with pytest.raises(UnicodeEncodeError):
        write("\ud800")
    replacement = fieldcrypt.register(_keyring(), replace=True)
    assert replacement.decrypt(bytes(write(SSN)), Place("users", "ssn")) == SSN.encode()


# -- blind-index tokens ------------------------------------------------------------------------

SSN_BYTES = SSN.encode()


def _expected(keyring: Keyring, value: bytes, key_index: int = -1) -> bytes:
    """The documented token, computed by hand from the unwrapped index key."""
    record = keyring.records(fieldcrypt.Purpose.BLIND_INDEX)[key_index]
    data_key = keyring._unwrap(record)
    return _aead.hmac_sha256(data_key, BLIND_INDEX_LABEL + COLUMN.encoded + value)[
        : keyring.blind_index_bytes
    ]


def test_prepared_tokens_are_the_documented_hmac(registered: Keyring) -> None:
    """Every token, first and prepared, equals HMAC(index key, label || place || value) truncated."""
    index = indexing.column_indexer("pii", COLUMN, None)
    tokens = [index(SSN_BYTES) for _ in range(3)]
    assert tokens == [_expected(registered, SSN_BYTES)] * 3
    assert index(b"987-65-4321") == _expected(registered, b"987-65-4321") != tokens[0]
    assert indexing.column_indexer(registered, COLUMN, None)(SSN_BYTES) == tokens[0]


def test_prepared_tokens_follow_an_index_key_rotation(registered: Keyring) -> None:
    """After rotate(BLIND_INDEX) the next token is under the new key, in this process at once."""
    index = indexing.column_indexer("pii", COLUMN, None)
    before = index(SSN_BYTES)
    registered.rotate(fieldcrypt.Purpose.BLIND_INDEX)
    after = index(SSN_BYTES)
    assert after != before
    assert after == _expected(registered, SSN_BYTES)


def test_prepared_tokens_follow_another_process_rotation_after_refresh_every() -> None:
    """A key made by another process is used once refresh_every has passed, as blind_index does."""
    keyring = fieldcrypt.register(_keyring(refresh_every=timedelta(milliseconds=50)), replace=True)
    try:
        other = Keyring("pii", keyring.master_key, keyring.key_store)
        index = indexing.column_indexer("pii", COLUMN, None)
        before = index(SSN_BYTES)
        other.rotate(fieldcrypt.Purpose.BLIND_INDEX)
        time.sleep(0.06)
        assert index(SSN_BYTES) == _expected(keyring, SSN_BYTES) != before
    finally:
        fieldcrypt.unregister("pii")


def test_prepared_tokens_follow_a_replaced_keyring_and_namespace(registered: Keyring) -> None:
    """register(..., replace=True) with another key or a namespace changes the very next token."""
    index = indexing.column_indexer("pii", COLUMN, None)
    first = index(SSN_BYTES)
    replacement = fieldcrypt.register(_keyring(), replace=True)
    assert index(SSN_BYTES) == _expected(replacement, SSN_BYTES) != first
    namespaced = Keyring(
        "pii", replacement.master_key, replacement.key_store, cache=replacement.cache, namespace="t-1"
    )
    fieldcrypt.register(namespaced, replace=True)
    assert index(SSN_BYTES) == namespaced.blind_index(SSN_BYTES, COLUMN) != _expected(replacement, SSN_BYTES)
    fieldcrypt.unregister("pii")
    with pytest.raises(ConfigurationError):
        index(SSN_BYTES)


def test_prepared_tokens_keep_the_cache_bounds_and_forget() -> None:
    """Past max_uses or max_age, or after forget(), the index key is unwrapped again."""
    clock = Clock()
    cache = fieldcrypt.DataKeyCache(max_uses=4, max_age=timedelta(minutes=10), clock=clock)
    keyring = fieldcrypt.register(_keyring(cache=cache), replace=True)
    try:
        index = indexing.column_indexer("pii", COLUMN, None)
        token = index(SSN_BYTES)
        unwraps = _counting_unwraps(keyring)
        for _ in range(8):
            assert index(SSN_BYTES) == token
        assert len(unwraps) == 2
        clock.now += 601
        assert index(SSN_BYTES) == token
        assert len(unwraps) == 3
        (record,) = keyring.records(fieldcrypt.Purpose.BLIND_INDEX)
        keyring.forget(record)
        assert index(SSN_BYTES) == token
        assert len(unwraps) == 4
    finally:
        fieldcrypt.unregister("pii")


def test_prepared_tokens_still_check_the_index_record(registered: Keyring) -> None:
    """A column whose record names other options is refused by a fresh process's first token."""
    indexing.column_indexer("pii", COLUMN, None)(SSN_BYTES)  # records: no normalizer
    index_records._checked.pop(id(registered), None)  # as a fresh process would start

    def strip(value: Any) -> Any:
        return value

    with pytest.raises(ConfigurationError, match="normalizer"):
        indexing.column_indexer("pii", COLUMN, strip)(SSN_BYTES)


def test_producer_keyring_cannot_compute_tokens() -> None:
    """A write-only producer keyring is refused on every token, prepared path or not."""
    public = rsa.generate_private_key(public_exponent=65537, key_size=3072).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    arn = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    producer = Keyring("pii", RsaProducerKey(arn, pem), fieldcrypt.MemoryKeyStore())
    index = indexing.column_indexer(producer, COLUMN, None)
    for _ in range(2):
        with pytest.raises(KeyAccessError):
            index(SSN_BYTES)


def test_insert_default_stores_the_documented_token(registered: Keyring) -> None:
    """Core executemany inserts store each row's documented token and ciphertext, never plaintext."""
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="pii", searchable=True)),
    )
    engine = sa.create_engine("sqlite://")
    table.metadata.create_all(engine)
    values = [f"{n:03d}-45-6789" for n in range(20)]
    with engine.begin() as conn:
        conn.execute(sa.insert(table), [{"id": n, "ssn": v} for n, v in enumerate(values)])
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, ssn, ssn_bidx FROM users ORDER BY id")).all()
        for n, stored, token in rows:
            assert values[n].encode() not in stored
            assert token == _expected(registered, values[n].encode())
        found = execute_verified(conn, sa.select(table.c.id).where(table.c.ssn == values[7])).scalars().all()
    assert found == [7]
    assert sql_blind_index.token(table.c.ssn.type, values[3]) == _expected(registered, values[3].encode())


def test_pynamodb_attribute_reads_and_tokens_follow_a_replaced_keyring(registered: Keyring) -> None:
    """An EncryptedModel's prepared reads and tokens switch keyrings on register(..., replace=True)."""
    from pynamodb.attributes import UnicodeAttribute

    from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel

    class Patient(EncryptedModel):
        class Meta:
            table_name = "per_column_patients"

        patient_id = UnicodeAttribute(hash_key=True)
        ssn = EncryptedAttribute(UnicodeAttribute(), keyring="pii")
        ssn_bidx = BlindIndexAttribute(of="ssn")

    first = Patient("p-1", ssn=SSN).serialize()
    assert SSN.encode() not in first["ssn"]["B"]
    assert Patient.from_raw_data(first).ssn == SSN
    replacement = fieldcrypt.register(_keyring(), replace=True)
    with pytest.raises(DecryptionError):
        Patient.from_raw_data(first)
    second = Patient("p-1", ssn=SSN).serialize()
    assert second["ssn_bidx"]["B"] != first["ssn_bidx"]["B"]
    assert second["ssn_bidx"]["B"] == replacement.blind_index(SSN_BYTES, Place("per_column_patients", "ssn"))
    assert Patient.from_raw_data(second).ssn == SSN
    moved = {**second, "patient_id": {"S": "p-2"}}
    with pytest.raises(DecryptionError):
        Patient.from_raw_data(moved)


def test_row_reader_binds_rows_under_a_namespace() -> None:
    """A namespaced keyring's row-bound values read back for their row only, through the row reader."""
    keyring = Keyring(
        "pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore(), namespace="t-9"
    )
    read = reading.row_reader(keyring, COLUMN, codecs.TextCodec())
    for row in (7, "k-1", ("a", 2)):
        blob = keyring.encrypt(SSN, Place("users", "ssn", row))
        assert SSN.encode() not in blob
        assert read(blob, row) == read(blob, row) == SSN
        with pytest.raises(DecryptionError) as caught:
            read(blob, 8)
        assert caught.value.row == "8"
    plain = Keyring("pii", keyring.master_key, keyring.key_store, cache=keyring.cache)
    with pytest.raises(DecryptionError):
        read(plain.encrypt(SSN, Place("users", "ssn", 7)), 7)


def test_counted_values_read_through_a_column_reader_are_all_counted(recorder: Any) -> None:
    """With metrics recording, every value a column reader opens counts as decrypted, a tampered
    one as a failure, also for a reader that remembered its key before counting began."""
    from metrics_helpers import attrs

    name = f"m{uuid.uuid4().hex[:12]}"
    keyring = Keyring(name, fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    fieldcrypt.register(keyring)
    try:
        read = reading.column_reader(name, COLUMN, codecs.TextCodec())
        blob = keyring.encrypt(SSN, COLUMN)
        before = recorder.collect()
        assert [read(blob) for _ in range(4)] == [SSN] * 4
        with pytest.raises(DecryptionError):
            read(blob[:-1] + bytes([blob[-1] ^ 1]))
        changed = recorder.delta(before)
        assert changed["fieldcrypt.values.decrypted"] == {attrs(keyring=name): 4}
        assert changed["fieldcrypt.decryption.failures"] == {attrs(keyring=name, kind="invalid"): 1}
    finally:
        fieldcrypt.unregister(name)


def test_a_reader_resolved_before_counting_starts_is_counted_after(tmp_path: Any) -> None:
    """A reader that kept a key while nothing recorded goes back through the counting decrypt
    once a meter provider is configured (fieldcrypt.metrics wraps the keyring's decrypt)."""
    from metrics_helpers import attrs, recording

    name = f"m{uuid.uuid4().hex[:12]}"
    keyring = Keyring(name, fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    read = reading.column_reader(keyring, COLUMN, codecs.TextCodec())
    blob = keyring.encrypt(SSN, COLUMN)
    assert read(blob) == read(blob) == SSN  # remembered, nothing counting yet
    with recording() as recorder:
        before = recorder.collect()
        assert read(blob) == read(blob) == read(blob) == SSN
        assert recorder.delta(before)["fieldcrypt.values.decrypted"] == {attrs(keyring=name): 3}


def test_a_forgotten_key_is_not_used_for_new_values() -> None:
    """After forget() (a key destroyed here) the next value is encrypted under a new key that reads back."""
    keyring = _keyring()
    first = keyring.encrypt(SSN, COLUMN)
    (record,) = keyring.records(fieldcrypt.Purpose.ENCRYPTION)
    keyring.key_store.update(record.evolve(status=fieldcrypt.Status.DESTROYED, wraps={}))
    keyring.forget(record)
    second = keyring.encrypt(SSN, COLUMN)
    assert second[:21] != first[:21]
    assert SSN.encode() not in second
    assert keyring.decrypt(second, COLUMN) == SSN.encode()
    with pytest.raises(KeyDestroyedError):
        keyring.decrypt(first, COLUMN)
