"""An in-process key store, for tests and short-lived scripts (its keys die with the process)."""

from __future__ import annotations

import builtins
import itertools
import threading
from collections.abc import Callable, Sequence

from fieldcrypt.keys.record import DataKeyRecord, Purpose
from fieldcrypt.stores.base import DamagedRows, KeyStoreConflict, insert_new, replace_revision


class MemoryKeyStore:
    """A dict behind a lock. Values encrypted with it are unreadable once the process ends."""

    def __init__(self) -> None:
        self._records: dict[str, DataKeyRecord] = {}
        self._lock = threading.Lock()

    def get(self, key_id: str) -> DataKeyRecord | None:
        with self._lock:
            return self._records.get(key_id)

    def list(self, keyring: str, purpose: Purpose | None = None) -> list[DataKeyRecord]:
        with self._lock:
            found = [
                r
                for r in self._records.values()
                if r.keyring == keyring and (purpose is None or r.purpose == purpose)
            ]
        return sorted(found, key=lambda r: (r.created_at, r.key_id))

    def keyring_names(self, prefix: str = "") -> builtins.list[str]:
        """The names of the keyrings with records here that start with ``prefix``, sorted."""
        with self._lock:
            return sorted({r.keyring for r in self._records.values() if r.keyring.startswith(prefix)})

    def get_many(self, key_ids: Sequence[str]) -> dict[str, DataKeyRecord]:
        with self._lock:
            return {k: self._records[k] for k in key_ids if k in self._records}

    def put(self, record: DataKeyRecord) -> None:
        self._insert([record])

    def put_many(self, records: Sequence[DataKeyRecord]) -> None:
        """Insert every record or, when one id or generation is taken, none."""
        self._insert(records)

    def _insert(self, records: Sequence[DataKeyRecord]) -> None:
        with self._lock:
            added: dict[str, DataKeyRecord] = {}
            for record in records:
                taken = f"data key {record.key_id} already exists"
                if record.key_id in self._records:
                    raise KeyStoreConflict(taken)
                if record.generation is not None and any(
                    (r.keyring, r.purpose, r.generation)
                    == (record.keyring, record.purpose, record.generation)
                    for r in itertools.chain(self._records.values(), added.values())
                ):
                    raise KeyStoreConflict(f"generation {record.generation} of {record.keyring} is taken")
                insert_new(added, record.key_id, record, taken)
            self._records.update(added)

    def update(self, record: DataKeyRecord) -> DataKeyRecord:
        with self._lock:
            return replace_revision(
                self._records, record.key_id, record, f"data key {record.key_id} changed since it was read"
            )

    def damaged(self, keyring: str) -> DamagedRows:
        """Never any: records are kept as objects, not rows."""
        return []

    def on_before_write_transaction(self, prepare: Callable[[], None]) -> None:
        """Nothing to do: this store shares no database lock with the application."""

    def __repr__(self) -> str:
        return f"MemoryKeyStore({len(self._records)} keys)"
