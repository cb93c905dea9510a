"""Many subjects' keys made at once: a bulk import, one key-store round trip per batch.

Made one at a time, a new subject's key costs a key-store read and an insert in a transaction of
its own (about 20 ms on a loaded PostgreSQL, so 1,000,000 subjects would take hours). Here each
batch of subjects costs one read of the ids (``get_many``) and one transaction inserting the
missing keys (``put_many``, the driver's executemany), on stores with
:class:`~fieldcrypt.stores.base.BatchKeyStore` (SQL, memory); other stores go one record at a time.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fieldcrypt.errors import ConfigurationError, KeyDestroyedError, KeyStoreConflict
from fieldcrypt.keys.record import DataKeyRecord
from fieldcrypt.stores.base import get_many, put_many
from fieldcrypt.subjects import Subject, canonical_subject, loaded, report_created

if TYPE_CHECKING:
    from fieldcrypt.subjects import SubjectKeys, _Wrapping

MAX_BATCH = 10_000  # subjects per transaction: bounds the memory and the length of one transaction
_ATTEMPTS = 4  # batches retried after another process made some of their keys first


@dataclass(frozen=True)
class SubjectBatch:
    """What :meth:`~fieldcrypt.subjects.SubjectKeys.prepare_subject_keys` found and did: keys made,
    keys already there, and subjects already shredded (their keys stay gone)."""

    keyring: str
    created: int
    existing: int
    shredded: int


def prepare(keys: SubjectKeys, subjects: Iterable[Subject], batch: int) -> SubjectBatch:
    """See ``SubjectKeys.prepare_subject_keys``."""
    if keys.write_only:
        keys._refuse_producer("make subject keys (they are opened to be used)")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ConfigurationError(f"batch must be between 1 and {MAX_BATCH:,} subjects")
    created = existing = shredded = 0
    chunks = iter(subjects)
    while chunk := list(itertools.islice(chunks, batch)):
        state = keys._wrapping_state(writing=True)
        if state.current is None:  # the keyring's first subject keys: one wrapping key for them all
            keys._new_wrapping_key()
            state = keys._wrapping_state(writing=True)
        # Canonical ids by tag: one subject given twice (5 and "5") is one key.
        by_tag = {keys._tag(state.id_key, c): c for c in map(canonical_subject, chunk)}
        made, found = _insert_missing(keys, list(by_tag), state)
        for tag, canonical in by_tag.items():
            if tag in made:
                key = made[tag]
                created += 1
            else:
                try:
                    key = keys._open_found(found[tag], state, None)
                except KeyDestroyedError:
                    shredded += 1
                    continue
                existing += 1
            # Cached as the write path caches them (the LRU keeps the latest batches).
            keys.subject_cache.get(canonical, functools.partial(loaded, key))
    return SubjectBatch(keys.name, created, existing, shredded)


def _insert_missing(
    keys: SubjectKeys, tags: list[str], state: _Wrapping
) -> tuple[dict[str, bytes], dict[str, DataKeyRecord]]:
    """Make and insert the keys ``tags`` lack: the keys made here, and the records found there."""
    store = keys.subject_key_store
    found = get_many(store, tags)
    made: dict[str, bytes] = {}
    for _attempt in range(_ATTEMPTS):
        missing = [tag for tag in tags if tag not in found and tag not in made]
        if not missing:
            return made, found
        new = {tag: keys._new_subject_key(tag, state) for tag in missing}
        try:
            put_many(store, [record for record, _ in new.values()])
        except KeyStoreConflict:
            # Another process made some of them meanwhile (or, one at a time, some of ours went in
            # before the taken one): whichever records are there now are the keys.
            found = get_many(store, tags)
            new = {tag: pair for tag, pair in new.items() if found.get(tag) == pair[0]}
        for tag, (record, key) in new.items():
            report_created(record)
            made[tag] = key
            found.pop(tag, None)
        if len(new) == len(missing):
            return made, found
    raise KeyStoreConflict(f"subject keys of a batch of {len(tags)} kept changing; prepare them again")
