"""Every searchable column's token options, checked on first use; index keys retired only when unused.

The first write of a searchable column records its keyring name, token length and normaliser
(:mod:`fieldcrypt.stores.indexes`); every process then checks its own options against that record
on its first write or search of the column, and refuses a mismatch with a
:class:`~fieldcrypt.errors.ConfigurationError` instead of searching with tokens that match
nothing. A search never writes the record (read-only replicas). The record also says which is the
oldest blind-index key the column's tokens may be under, so a key still in use is never retired.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from fieldcrypt.errors import ConfigurationError, KeyStoreConflict
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status
from fieldcrypt.place import Place
from fieldcrypt.stores.base import KeyStore
from fieldcrypt.stores.indexes import IndexRecord, IndexRecords, records_of

# Per keyring: (table, column) -> monotonic time until which this process trusts its check
# (infinity once the record was found to match or was written).
# Keyed by id(keyring), each entry removed when its keyring is collected (so an id is never reused
# while present): a plain dict lookup per token, where a WeakKeyDictionary builds a weak reference.
_checked: dict[int, dict[tuple[str, str], float]] = {}
_lock = threading.Lock()


def normalizer_name(normalizer: Callable[[Any], Any] | None) -> str:
    """How a record names a normaliser: ``module.qualname`` ("" for none or the identity)."""
    if normalizer is None or getattr(normalizer, "fieldcrypt_identity", False):
        return ""
    return f"{getattr(normalizer, '__module__', '?')}.{getattr(normalizer, '__qualname__', repr(normalizer))}"


def check(keyring: Keyring, place: Place, normalizer: Callable[[Any], Any] | None, *, writing: bool) -> None:
    """Refuse to index ``place`` with options other than those its tokens were made with.

    A write records the options when the column has no record yet; a search only reads.

    Raises:
        ConfigurationError: the column's record names another keyring, token length or normaliser.
    """
    where = (place.table, place.column)
    checked = _checked.get(id(keyring))
    if checked is not None and checked.get(where, 0.0) > time.monotonic():
        return
    records = records_of(keyring.key_store)
    found = records.get(*where)
    mine = _record(keyring, place, normalizer)
    if found is None:
        if not writing:
            _trust(keyring, where, time.monotonic() + keyring.refresh_every.total_seconds())
            return
        if _defer(keyring.key_store, mine):
            # Written before the next transaction; until then, do not read the store per token.
            _trust(keyring, where, time.monotonic() + keyring.refresh_every.total_seconds())
            return
        found = _put(records, mine)
    _refuse_mismatch(found, mine)
    _trust(keyring, where, math.inf)


def trusted_until(keyring: Keyring, place: Place) -> float:
    """Until when (monotonic) ``check`` of ``place`` returns at once: its record was checked."""
    checked = _checked.get(id(keyring))
    return 0.0 if checked is None else checked.get((place.table, place.column), 0.0)


def find(keyring: Keyring, place: Place) -> IndexRecord | None:
    """The column's record, if it has one (a read)."""
    return records_of(keyring.key_store).get(place.table, place.column)


def record(keyring: Keyring, place: Place, normalizer: Callable[[Any], Any] | None) -> IndexRecord:
    """The column's record, written now if missing (operations: never inside an application
    transaction); a mismatch raises ``ConfigurationError``."""
    records = records_of(keyring.key_store)
    mine = _record(keyring, place, normalizer)
    found = records.get(place.table, place.column) or _put(records, mine)
    _refuse_mismatch(found, mine)
    return found


def reindexed(keyring: Keyring, place: Place, normalizer: Callable[[Any], Any] | None, key_id: str) -> None:
    """A reindex of the whole column finished with every token under ``key_id`` or newer."""
    records = records_of(keyring.key_store)
    order = _key_order(keyring)
    if keyring.tenant is not None:
        return  # one record serves every tenant, whose keys differ: it tracks none (still_using)
    for _ in range(8):
        found = record(keyring, place, normalizer)
        if order.get(found.oldest_key, -1) >= order.get(key_id, -1):
            return
        try:
            records.update(found.evolve(oldest_key=key_id))
            return
        except KeyStoreConflict:
            continue  # another job moved it meanwhile: read it again
    raise ConfigurationError(f"{place.table}.{place.column}: its index record keeps changing; rerun")


def still_using(keyring: Keyring, key_id: str) -> list[str]:
    """The columns whose tokens may still be under blind-index key ``key_id`` (by their records;
    a tenant's keyring: every column of its family, whose records track no key)."""
    order = _key_order(keyring)
    mine = order.get(key_id, -1)
    return sorted(
        f"{r.table}.{r.column}"
        for r in records_of(keyring.key_store).list(_recorded_name(keyring))
        if order.get(r.oldest_key, -1) <= mine
    )


def flush(store: KeyStore) -> None:
    """Write the records deferred while an application transaction may have held the SQLite lock."""
    pending = _pending.get(store)
    if pending is not None:
        pending.flush()


# -- helpers ------------------------------------------------------------------------------------


def _recorded_name(keyring: Keyring) -> str:
    """The keyring a column's record names: its own, or ``family/*`` for a tenant's keyring (one
    record per column, whichever tenant wrote first; never equal to an ordinary keyring's name)."""
    return keyring.name if keyring.tenant is None else keyring.name.removesuffix(keyring.tenant) + "*"


def _record(keyring: Keyring, place: Place, normalizer: Callable[[Any], Any] | None) -> IndexRecord:
    active = [r for r in keyring.records(Purpose.BLIND_INDEX) if r.status is Status.ACTIVE]
    if keyring.tenant is not None:
        active = []  # each tenant has its own index keys: the record tracks none
    return IndexRecord(
        table=place.table,
        column=place.column,
        keyring=_recorded_name(keyring),
        token_bytes=keyring.blind_index_bytes,
        normalizer=normalizer_name(normalizer),
        oldest_key=active[0].key_id if active else "",
    )


def _put(records: IndexRecords, mine: IndexRecord) -> IndexRecord:
    try:
        records.put(mine)
        return mine
    except KeyStoreConflict:  # another process recorded it first: check against theirs
        found = records.get(mine.table, mine.column)
        if found is None:
            raise
        return found


def _refuse_mismatch(found: IndexRecord, mine: IndexRecord) -> None:
    if found.options == mine.options:
        return
    raise ConfigurationError(
        f"{mine.table}.{mine.column}: its blind index was built with keyring {found.keyring!r}, "
        f"{found.token_bytes}-byte tokens and normalizer {found.normalizer or 'none'}; this process "
        f"uses keyring {mine.keyring!r}, {mine.token_bytes}-byte tokens and normalizer "
        f"{mine.normalizer or 'none'}, whose tokens would never match: configure it like the "
        "application that wrote the column (for the CLI, pass --metadata module:Base so the "
        "column's normalizer is known)"
    )


def _trust(keyring: Keyring, where: tuple[str, str], until: float) -> None:
    with _lock:
        checked = _checked.get(id(keyring))
        if checked is None:
            checked = _checked[id(keyring)] = {}
            weakref.finalize(keyring, _checked.pop, id(keyring), None)
        checked[where] = until


def _key_order(keyring: Keyring) -> dict[str, int]:
    """Blind-index key ids, oldest first (any status): "" (before the first key) is -1."""
    keys: list[DataKeyRecord] = keyring.records(Purpose.BLIND_INDEX)
    return {"": -1, **{r.key_id: i for i, r in enumerate(keys)}}


class _Pending:
    """Records a SQLite key store must not write now (the application's transaction may hold
    the file's one write lock); written before the next application transaction begins."""

    def __init__(self, store: KeyStore) -> None:
        self.records = records_of(store)
        self.waiting: dict[str, IndexRecord] = {}

    def flush(self) -> None:
        for record_id, mine in list(self.waiting.items()):
            _refuse_mismatch(_put(self.records, mine), mine)
            self.waiting.pop(record_id, None)


_pending: weakref.WeakKeyDictionary[KeyStore, _Pending] = weakref.WeakKeyDictionary()


def _defer(store: KeyStore, mine: IndexRecord) -> bool:
    engine = getattr(store, "engine", None)
    if engine is None or engine.dialect.name != "sqlite":
        return False
    with _lock:
        pending = _pending.get(store)
        if pending is None:
            pending = _pending[store] = _Pending(store)
            store.on_before_write_transaction(pending.flush)
        pending.waiting[mine.record_id] = mine
    return True
