"""Read-your-writes for a key store whose listing is eventually consistent.

A DynamoDB key store lists a keyring's records through a global secondary index, which a write
reaches a moment later (usually well under a second; a GSI cannot be read consistently). The
keyring reads its own writes at once: it makes its first blind-index key and then looks for it,
and ``rotate()`` expects the very next write to use the new key. So the store keeps the records it
wrote itself for a while and adds them to what a listing returns, the higher revision winning.
Other processes see a new key within their ``refresh_every`` anyway, which is far longer.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from fieldcrypt.keys.record import DataKeyRecord, Purpose
from fieldcrypt.stores.base import DamagedRow

KEEP_SECONDS = 60.0  # far longer than an index takes to show a write
MAX_KEPT = 1000  # a bulk of writes (subject keys) keeps its newest; the index has the older ones


class RecentWrites:
    """This process's latest writes, by key id, each for ``keep`` seconds."""

    def __init__(
        self, keep: float = KEEP_SECONDS, most: int = MAX_KEPT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keep = keep
        self._most = most
        self._clock = clock
        self._records: OrderedDict[str, tuple[float, DataKeyRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def wrote(self, record: DataKeyRecord) -> None:
        with self._lock:
            self._records.pop(record.key_id, None)
            self._records[record.key_id] = (self._clock(), record)
            while len(self._records) > self._most:
                self._records.popitem(last=False)

    def merged(
        self, keyring: str, purpose: Purpose | None, listed: Sequence[DataKeyRecord | DamagedRow]
    ) -> list[DataKeyRecord | DamagedRow]:
        """``listed`` with this process's recent writes of ``keyring`` added or, when the listing
        shows an older revision of one (the index has not caught up), put in its place."""
        now = self._clock()
        with self._lock:
            while self._records and now - next(iter(self._records.values()))[0] > self._keep:
                self._records.popitem(last=False)
            mine = [
                r
                for _, r in self._records.values()
                if r.keyring == keyring and (purpose is None or r.purpose is purpose)
            ]
        if not mine:
            return list(listed)
        found: dict[str, DataKeyRecord | DamagedRow] = {row.key_id: row for row in listed}
        for record in mine:
            seen = found.get(record.key_id)
            if seen is None or (isinstance(seen, DataKeyRecord) and seen.revision < record.revision):
                found[record.key_id] = record
        return list(found.values())
