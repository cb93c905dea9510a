"""Many subjects' keys made at once (Keyring.prepare_subject_keys) and the stores' batch calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import ConfigurationError, KeyDestroyedError, Keyring, LocalMasterKey, MemoryKeyStore, Place
from fieldcrypt.errors import KeyStoreConflict
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, utcnow
from fieldcrypt.stores.base import BatchKeyStore, KeyStore
from fieldcrypt.stores.sql import SqlKeyStore
from fieldcrypt.subject_batches import MAX_BATCH
from fieldcrypt.testing import CountingMasterKey

SSN = Place("users", "ssn")


class CountingStore(MemoryKeyStore):
    """A memory store counting its calls; ``before_put_many`` runs once, before the first batch insert."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {"get": 0, "put": 0, "get_many": 0, "put_many": 0}
        self.before_put_many: Callable[[], None] | None = None

    def get(self, key_id: str) -> DataKeyRecord | None:
        self.calls["get"] += 1
        return super().get(key_id)

    def put(self, record: DataKeyRecord) -> None:
        self.calls["put"] += 1
        super().put(record)

    def get_many(self, key_ids: Sequence[str]) -> dict[str, DataKeyRecord]:
        self.calls["get_many"] += 1
        return super().get_many(key_ids)

    def put_many(self, records: Sequence[DataKeyRecord]) -> None:
        self.calls["put_many"] += 1
        hook, self.before_put_many = self.before_put_many, None
        if hook is not None:
            hook()
        super().put_many(records)


class OneAtATime:
    """A key store with only the KeyStore calls (like DynamoDBKeyStore): no batch reads or inserts."""

    def __init__(self) -> None:
        self.inner = MemoryKeyStore()
        self.get, self.list, self.update = self.inner.get, self.inner.list, self.inner.update
        self.damaged, self.on_before_write_transaction = (
            self.inner.damaged,
            self.inner.on_before_write_transaction,
        )
        self.puts = 0

    def put(self, record: DataKeyRecord) -> None:
        self.puts += 1
        self.inner.put(record)


def keyring(master: MasterKey, store: Any, **options: Any) -> Keyring:
    return Keyring("pii", master, store, **options)


def test_a_batch_costs_one_read_and_one_insert_and_no_kms_call_per_subject() -> None:
    """2,500 subjects in batches of 1,000: 3 get_many, 3 put_many, no single get or put, 2 KMS wraps in all."""
    store, master = CountingStore(), CountingMasterKey(LocalMasterKey.generate())
    ring = keyring(master, store)
    done = ring.prepare_subject_keys(range(2500), batch=1000)
    assert (done.created, done.existing, done.shredded) == (2500, 0, 0)
    assert store.calls == {"get": 0, "put": 2, "get_many": 3, "put_many": 3}  # put: anchor, wrapping key
    assert len(store.list("pii#subjects")) == 2500
    assert master.calls["wrap"] == 2  # the anchor and the one subject-wrapping key


def test_values_written_after_a_batch_use_its_cached_keys_and_open_in_a_new_process() -> None:
    """Writes after prepare make no key-store call; a new keyring reads them; raw values are ciphertext."""
    store, master = CountingStore(), LocalMasterKey.generate()
    ring = keyring(master, store)
    ring.prepare_subject_keys(range(300), batch=100)
    before = dict(store.calls)
    values = {n: ring.encrypt_for_subject(n, f"ssn-{n:04d}", SSN) for n in range(300)}
    assert store.calls == before
    assert all(f"ssn-{n:04d}".encode() not in v for n, v in values.items())
    fresh = keyring(master, store)
    assert all(fresh.decrypt_for_subject(n, v, SSN) == f"ssn-{n:04d}".encode() for n, v in values.items())
    assert len({v[:21] for v in values.values()}) == 300  # a key of its own per subject


def test_existing_and_shredded_subjects_are_counted_and_kept_as_they_are() -> None:
    """Existing keys are kept (old values read), a shredded subject gets no key, an id given twice is one subject."""
    store, master = MemoryKeyStore(), LocalMasterKey.generate()
    ring = keyring(master, store)
    old = ring.encrypt_for_subject(1, "one", SSN)
    ring.encrypt_for_subject(2, "two", SSN)
    ring.shred_subject(2)
    again = keyring(master, store)
    done = again.prepare_subject_keys([1, 2, 3, "3", 4])
    assert (done.created, done.existing, done.shredded) == (2, 1, 1)
    assert again.decrypt_for_subject(1, old, SSN) == b"one"
    with pytest.raises(KeyDestroyedError):
        again.encrypt_for_subject(2, "new", SSN)
    assert len(store.list("pii#subjects")) == 4


def test_keys_another_process_made_meanwhile_are_used_not_replaced() -> None:
    """A subject made by another keyring between the batch's read and insert keeps that keyring's key."""
    store, master = CountingStore(), LocalMasterKey.generate()
    ring, other = keyring(master, store), keyring(master, store)
    ring.prepare_subject_keys([0])  # the anchor and wrapping key exist, as in a running application
    theirs: list[bytes] = []
    store.before_put_many = lambda: theirs.append(other.encrypt_for_subject(7, "theirs", SSN))
    done = ring.prepare_subject_keys(range(1, 11))
    assert (done.created, done.existing) == (9, 1)
    assert ring.decrypt_for_subject(7, theirs[0], SSN) == b"theirs"
    assert other.decrypt_for_subject(7, ring.encrypt_for_subject(7, "ours", SSN), SSN) == b"ours"
    assert store.calls["put_many"] == 3  # the first batch, the refused one, the retry without 7


def test_a_store_without_batch_calls_is_served_one_record_at_a_time() -> None:
    """A store like DynamoDBKeyStore (no get_many/put_many): the same keys, one put per subject."""
    store, master = OneAtATime(), LocalMasterKey.generate()
    assert isinstance(store, KeyStore)
    assert not isinstance(store, BatchKeyStore)
    ring = keyring(master, store)
    done = ring.prepare_subject_keys(range(20), batch=5)
    assert done.created == 20
    assert store.puts == 20 + 2  # and the anchor and the wrapping key
    value = ring.encrypt_for_subject(3, "x", SSN)
    assert keyring(master, store).decrypt_for_subject(3, value, SSN) == b"x"


def test_each_key_made_is_reported_by_its_tag_on_the_audit_logger(caplog: pytest.LogCaptureFixture) -> None:
    """One subject_key.created line per key made, naming its tag; the subject ids appear nowhere."""
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore())
    with caplog.at_level(logging.INFO, logger="fieldcrypt"):
        ring.prepare_subject_keys(["alice@example.com", "bob@example.com"])
    lines = [r.getMessage() for r in caplog.records if "subject_key.created" in r.getMessage()]
    assert len(lines) == 2
    assert any(ring.subject_tag("alice@example.com") in line for line in lines)
    assert "@example.com" not in caplog.text


def test_batch_sizes_and_producer_keyrings_are_refused() -> None:
    """A batch of 0 or over MAX_BATCH raises ConfigurationError; a write-only producer raises KeyAccessError."""
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore())
    for batch in (0, MAX_BATCH + 1):
        with pytest.raises(ConfigurationError, match="batch must be between 1 and 10,000 subjects"):
            ring.prepare_subject_keys([1], batch=batch)
    ring.write_only = True
    with pytest.raises(fieldcrypt.KeyAccessError):
        ring.prepare_subject_keys([1])


def _record(key_id: str) -> DataKeyRecord:
    return DataKeyRecord(
        key_id=key_id,
        keyring="pii#subjects",
        purpose=Purpose.SUBJECT,
        status=Status.ACTIVE,
        created_at=utcnow(),
        wraps={"subject_wrap:w": b"\x01" * 60},
    )


def _all_or_none(store: BatchKeyStore) -> None:
    store.put_many([_record("a"), _record("b")])
    with pytest.raises(KeyStoreConflict):
        store.put_many([_record("c"), _record("a"), _record("d")])
    assert sorted(store.get_many(["a", "b", "c", "d", "e"])) == ["a", "b"]
    store.put_many([_record("c"), _record("d")])
    assert sorted(store.get_many(["c", "d"])) == ["c", "d"]


def test_a_sql_batch_insert_stores_all_or_none(engine: sa.Engine) -> None:
    """SQLite, PostgreSQL, MariaDB: a batch with one taken id stores none of its records; get_many finds them."""
    store = SqlKeyStore(engine)
    store.create_table()
    _all_or_none(store)
    with engine.connect() as conn:
        (wraps,) = conn.execute(sa.select(store.table.c.wraps).where(store.table.c.key_id == "a")).one()
    assert "AQEB" in wraps  # the wrapped key as stored: base64 of the bytes given, nothing else


def test_a_memory_batch_insert_stores_all_or_none() -> None:
    """MemoryKeyStore: the same all-or-none batch, also for an id given twice in one batch."""
    store = MemoryKeyStore()
    _all_or_none(store)
    with pytest.raises(KeyStoreConflict):
        store.put_many([_record("x"), _record("x")])
    assert store.get_many(["x"]) == {}
