"""The in-process stores (MemoryKeyStore, MemoryIndexRecords) keep the key-store contract: puts never
overwrite, updates are a compare-and-set on the revision (one helper, fieldcrypt.stores.base)."""

from __future__ import annotations

import pytest

import fieldcrypt
from fieldcrypt.stores import KeyStoreConflict
from fieldcrypt.stores.indexes import IndexRecord, MemoryIndexRecords
from test_sql_key_store import record


def test_memory_key_store_put_and_update_are_checked() -> None:
    """A taken id or generation is refused, a stale update too; a fresh update bumps the revision."""
    store = fieldcrypt.MemoryKeyStore()
    store.put(record("a" * 40, generation=1))
    with pytest.raises(KeyStoreConflict, match=r"^data key a{40} already exists$"):
        store.put(record("a" * 40, keyring="evil"))
    with pytest.raises(KeyStoreConflict, match=r"^generation 1 of pii is taken$"):
        store.put(record("b" * 40, generation=1))
    read = store.get("a" * 40)
    assert read is not None
    updated = store.update(read.evolve(status=fieldcrypt.Status.RETIRED))
    assert (updated.revision, store.get("a" * 40)) == (1, updated)
    with pytest.raises(KeyStoreConflict, match="changed since it was read"):
        store.update(read.evolve(status=fieldcrypt.Status.DESTROYED))
    with pytest.raises(KeyStoreConflict, match="changed since it was read"):
        store.update(record("c" * 40))  # never stored
    assert store.get("a" * 40) == updated


def test_memory_index_records_put_and_update_are_checked() -> None:
    """A column's second record is refused, a stale update too; a fresh update bumps the revision."""
    records = MemoryIndexRecords()
    first = IndexRecord("users", "ssn", "pii", 16, "", "")
    records.put(first)
    with pytest.raises(KeyStoreConflict, match=r"users\.ssn already has an index record"):
        records.put(first.evolve(token_bytes=8))
    updated = records.update(first.evolve(oldest_key="k2"))
    assert (updated.revision, records.get("users", "ssn")) == (1, updated)
    with pytest.raises(KeyStoreConflict, match=r"the index record of users\.ssn changed"):
        records.update(first.evolve(oldest_key="k3"))
    assert records.get("users", "ssn") == updated
