"""A bounded, thread-safe cache of unwrapped data keys.

Why cache at all: without it every value would cost a KMS call. Why bound it:
- ``max_age`` (default 10 minutes) bounds how long a process keeps using a key after KMS access
  to it is revoked, and how long plaintext key material sits in memory;
- ``max_uses`` (default 2**22 values) bounds how much data one unwrap serves before KMS is asked
  again, so a process that never idles still re-proves its access;
- ``max_entries`` (default 1000 keys, a few hundred KB) bounds memory when a table holds values
  under many historic data keys. Beyond it the least recently *loaded* key goes first: lookups
  take a lock-free path that does not reorder entries (hot keys cost one extra unwrap per
  ``max_entries`` loads at worst).
Concurrent misses for one key wait for a single loader (one KMS call, not one per thread).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from fieldcrypt.errors import ConfigurationError

T = TypeVar("T")


@dataclass(eq=False)
class CacheEntry(Generic[T]):
    """One cached key. ``use()`` is the lock-free fast path: count a use, say if still fresh."""

    value: T
    expires_at: float
    max_uses: int
    clock: Callable[[], float]
    _uses: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def use(self) -> bool:
        # itertools.count is atomic under the GIL, so threads never lose a count.
        return next(self._uses) <= self.max_uses and self.clock() < self.expires_at


@dataclass
class _Loading:
    done: threading.Event = field(default_factory=threading.Event)
    entry: CacheEntry[object] | None = None
    error: BaseException | None = None


class DataKeyCache:
    """Plaintext data keys (as cipher objects) by key id, bounded by age, uses and entries."""

    def __init__(
        self,
        *,
        max_age: timedelta = timedelta(minutes=10),
        max_uses: int = 2**22,
        max_entries: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age <= timedelta(0):
            raise ConfigurationError("cache max_age must be positive")
        if max_uses < 1:
            raise ConfigurationError("cache max_uses must be at least 1")
        if max_entries < 1:
            raise ConfigurationError("cache max_entries must be at least 1")
        self.max_age = max_age
        self.max_uses = max_uses
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, CacheEntry[object]] = OrderedDict()
        self._loading: dict[bytes, _Loading] = {}
        self._lock = threading.Lock()

    def entry(self, key_id: bytes, load: Callable[[], T]) -> CacheEntry[T]:
        """Return a fresh entry for ``key_id`` (counting one use), loading it at most once."""
        # Lock-free fast path: a dict read is atomic under the GIL, and ``use()`` checks the
        # bounds. It skips the LRU touch, so eviction is "least recently loaded" for hot keys.
        hot = self._entries.get(key_id)
        if hot is not None and hot.use():
            return hot  # type: ignore[return-value]
        with self._lock:
            cached = self._entries.get(key_id)
            if cached is not None:
                if cached.use():
                    self._entries.move_to_end(key_id)
                    return cached  # type: ignore[return-value]
                del self._entries[key_id]
            loading = self._loading.get(key_id)
            owner = loading is None
            if loading is None:
                loading = self._loading[key_id] = _Loading()
        if not owner:
            loading.done.wait()
            if loading.entry is None:
                assert loading.error is not None
                raise loading.error
            return loading.entry  # type: ignore[return-value]
        try:
            entry: CacheEntry[object] = CacheEntry(
                load(), self._clock() + self.max_age.total_seconds(), self.max_uses, self._clock
            )
            entry.use()
            loading.entry = entry
        except BaseException as exc:
            loading.error = exc
            raise
        finally:
            with self._lock:
                del self._loading[key_id]
                if loading.entry is not None:
                    self._entries[key_id] = loading.entry
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
            loading.done.set()
        return entry  # type: ignore[return-value]

    def fresh(self, key_id: bytes) -> Any:
        """The cached value if present and within bounds (counting one use), else None. Lock-free."""
        hot = self._entries.get(key_id)
        # CacheEntry.use() inlined: this runs once per value decrypted.
        if hot is not None and next(hot._uses) <= hot.max_uses and self._clock() < hot.expires_at:
            return hot.value
        return None

    def get(self, key_id: bytes, load: Callable[[], T]) -> T:
        return self.entry(key_id, load).value

    def evict(self, key_id: bytes) -> None:
        with self._lock:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"DataKeyCache({len(self._entries)} keys, max_age={self.max_age}, "
            f"max_uses={self.max_uses}, max_entries={self.max_entries})"
        )
