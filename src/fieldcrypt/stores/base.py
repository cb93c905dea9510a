"""The key-store contract."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from fieldcrypt.errors import KeyStoreConflict
from fieldcrypt.keys.record import DataKeyRecord, Purpose

__all__ = [
    "BatchKeyStore",
    "DamagedRow",
    "DamagedRows",
    "KeyStore",
    "KeyStoreConflict",
    "RowReports",
    "damaged_row",
    "get_many",
    "insert_new",
    "put_many",
    "replace_revision",
]

log = logging.getLogger("fieldcrypt")


@dataclass(frozen=True)
class DamagedRow:
    """A key-store row that could not be read as a record (edited by hand, junk): skipped."""

    key_id: str
    keyring: str
    reason: str


def damaged_row(key_id: str, keyring: str, exc: Exception) -> DamagedRow:
    # A parse error may quote the stored text (not secret: names, wrapped keys) at length: keep
    # its first line, shortened.
    text = str(exc).splitlines()[0][:120] if str(exc) else "unreadable"
    return DamagedRow(key_id, keyring, f"{type(exc).__name__}: {text}")


DamagedRows = list[DamagedRow]  # an alias: inside a store, ``list`` names the method


class RowReports:
    """The damaged rows a store met, by keyring; each is logged once per process."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, DamagedRow]] = {}

    def seen(self, keyring: str, found: list[DamagedRow]) -> None:
        known = self._rows.get(keyring, {})
        for row in found:
            if row.key_id not in known:
                log.warning(
                    "fieldcrypt: key-store row %s of keyring %s is unusable (%s); skipped. "
                    "`fieldcrypt keys list` shows it; restore it from a backup or delete it",
                    row.key_id,
                    row.keyring,
                    row.reason,
                )
        self._rows[keyring] = {row.key_id: row for row in found}

    def sort_out(
        self, keyring: str, parsed: list[DataKeyRecord | DamagedRow], *, every_purpose: bool
    ) -> list[DataKeyRecord]:
        """The records among ``parsed``, oldest first; the damaged rows are noted when the listing
        covered every purpose (a filtered one cannot tell which damaged rows are gone)."""
        if every_purpose:
            self.seen(keyring, [p for p in parsed if isinstance(p, DamagedRow)])
        records = [p for p in parsed if isinstance(p, DataKeyRecord)]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    def of(self, keyring: str) -> list[DamagedRow]:
        return list(self._rows.get(keyring, {}).values())


@runtime_checkable
class KeyStore(Protocol):
    """Holds data-key records: metadata and wrapped copies, never a plaintext key.

    Contract: ``list`` never fails on one unreadable row (junk status, bad JSON or base64): it
    skips it, logs it and reports it through ``damaged``. ``put`` inserts and never overwrites (an existing id raises
    :class:`KeyStoreConflict`, which matters for DynamoDB global tables, where two regions may
    create keys at once); ``update`` replaces a record only if its stored ``revision`` is still
    the one the caller read, and stores ``revision + 1``. Reads (``get``, ``list``) never write,
    so a read-only replica (an Aurora secondary region) can serve them.

    Raises:
        KeyStoreConflict: on a taken id, a taken (keyring, purpose, generation), or a stale revision.
    """

    def get(self, key_id: str) -> DataKeyRecord | None: ...

    def list(self, keyring: str, purpose: Purpose | None = None) -> list[DataKeyRecord]: ...

    def put(self, record: DataKeyRecord) -> None: ...

    def update(self, record: DataKeyRecord) -> DataKeyRecord: ...

    def damaged(self, keyring: str) -> DamagedRows:
        """Rows of ``keyring`` that ``list`` skipped because they could not be read as records."""
        ...

    def on_before_write_transaction(self, prepare: Callable[[], None]) -> None:
        """Ask the store to call ``prepare`` before the application opens a write transaction.

        Only stores that share a single-writer database with the application (SQLite) need it:
        there, creating a data key while the application holds the write lock would wait on
        itself. Other stores ignore it.
        """
        ...


@runtime_checkable
class BatchKeyStore(Protocol):
    """Optional for a key store: many records read, or inserted, in one round trip (a bulk import of
    subject keys makes thousands at once). Stores without it are served one record at a time.

    ``put_many`` follows ``put``'s contract for every record and stores all or none of them.

    Raises:
        KeyStoreConflict: from ``put_many``, when any id (or generation) is taken; none is stored.
    """

    def get_many(self, key_ids: Sequence[str]) -> dict[str, DataKeyRecord]: ...

    def put_many(self, records: Sequence[DataKeyRecord]) -> None: ...


def get_many(store: KeyStore, key_ids: Sequence[str]) -> dict[str, DataKeyRecord]:
    """The records of ``key_ids`` that exist, by id: one round trip where the store can."""
    if isinstance(store, BatchKeyStore):
        return store.get_many(key_ids)
    return {key_id: record for key_id in key_ids if (record := store.get(key_id)) is not None}


def put_many(store: KeyStore, records: Sequence[DataKeyRecord]) -> None:
    """Insert ``records``: all or none where the store can, else one by one up to the first taken id.

    Raises:
        KeyStoreConflict: an id or generation is taken (read the ids again to see which are stored).
    """
    if isinstance(store, BatchKeyStore):
        store.put_many(records)
        return
    for record in records:
        store.put(record)


class _Revisioned(Protocol):
    @property
    def revision(self) -> int: ...

    def evolve(self, **changes: Any) -> Any: ...


_R = TypeVar("_R", bound=_Revisioned)


def insert_new(records: dict[str, _R], record_id: str, record: _R, taken: str) -> None:
    """Keep ``record`` in an in-process dict under a new id (the caller holds its lock).

    Raises:
        KeyStoreConflict: ``taken``, when the id is in use.
    """
    if record_id in records:
        raise KeyStoreConflict(taken)
    records[record_id] = record


def replace_revision(records: dict[str, _R], record_id: str, record: _R, changed: str) -> _R:
    """Replace a record of an in-process dict if its stored revision is still ``record.revision``,
    storing ``revision + 1`` (the key stores' compare-and-set; the caller holds the dict's lock).

    Raises:
        KeyStoreConflict: ``changed``, when the record is gone or another write came first.
    """
    stored = records.get(record_id)
    if stored is None or stored.revision != record.revision:
        raise KeyStoreConflict(changed)
    new: _R = record.evolve(revision=record.revision + 1)
    records[record_id] = new
    return new
