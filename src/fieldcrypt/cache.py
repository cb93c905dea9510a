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

Failures are remembered too (negative caching): a load that fails with a
:class:`~fieldcrypt.errors.DecryptionError` (unknown or destroyed key, a wrapped copy that does not
open, a key that does not match its id) is raised again without a key-store read or KMS call for
``failure_ttl`` (default 10 seconds), so a column full of unopenable values costs one KMS call per
key and interval, not one per value. Brief, because a failure can heal (a key-store row still
replicating, a rewrap in progress); bounded by ``max_failures`` (default 1000) like the keys
themselves. Transient KMS failures (:class:`~fieldcrypt.errors.KeyAccessError`) are not
remembered: retries and the outage fallback must reach KMS again.

What a cache did is counted for ``fieldcrypt.metrics`` without a cost per value: hits are read
from the use counters the entries keep anyway (to enforce ``max_uses``), misses and evictions
are counted where the lock is already held (:func:`process_totals`).

Slots are chosen by the caller. A keyring puts its identity into every slot, as the small number
:meth:`DataKeyCache.scope` gives it (an int hashes faster than the identity, on every read), so
keyrings sharing one cache never read through each other's keys.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from fieldcrypt.errors import ConfigurationError, DecryptionError

T = TypeVar("T")
MAX_SCOPES = 4096  # keyring identities one cache remembers (each holds a key store object)


@dataclass(eq=False, slots=True)
class CacheEntry(Generic[T]):
    """One cached key. ``use()`` is the lock-free fast path: count a use, say if still fresh.

    Holders outside the cache (a keyring's current key, a column reader's memo in
    :mod:`fieldcrypt.reading`) check ``use()`` before every use, so an entry the cache drops on
    purpose (``evict``, ``clear``) is killed: it fails every later check and lets go of its key.
    """

    value: T
    expires_at: float
    max_uses: int
    clock: Callable[[], float]
    _uses: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def use(self) -> bool:
        # itertools.count is atomic under the GIL, so threads never lose a count.
        return next(self._uses) <= self.max_uses and self.clock() < self.expires_at

    def hits(self, refused: int = 0) -> int:
        """Uses within bounds after the first (the load), read without counting a use.

        An ``itertools.count`` shows its next number only in its repr ("count(7)"). ``refused``:
        uses known to have found the key expired (the evicting lookup's); another lookup racing
        the expiry still counts as a hit.
        """
        used = int(repr(self._uses)[6:-1]) - 1 - refused
        return max(min(used, self.max_uses) - 1, 0)

    def kill(self) -> None:
        # The bound first, then the key: a lock-free reader that loads ``value`` before checking
        # ``max_uses`` either sees the key with a check that may still pass (the use raced the
        # eviction, as it always could) or sees None with a check that fails.
        self.max_uses = 0
        self.value = None  # type: ignore[assignment]


@dataclass(frozen=True)
class _Failure:
    error: DecryptionError
    expires_at: float


@dataclass
class _Loading:
    done: threading.Event = field(default_factory=threading.Event)
    entry: CacheEntry[object] | None = None
    error: BaseException | None = None


@dataclass
class CacheCounts:
    """What caches did: hits, misses (loads begun), evictions by reason, keys held now."""

    hits: int = 0
    misses: int = 0
    evictions: Counter[str] = field(default_factory=Counter)
    keys: int = 0

    def add(self, other: CacheCounts) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.evictions.update(other.evictions)
        self.keys += other.keys


class DataKeyCache:
    """Plaintext data keys (as cipher objects) by key id, bounded by age, uses and entries."""

    def __init__(
        self,
        *,
        max_age: timedelta = timedelta(minutes=10),
        max_uses: int = 2**22,
        max_entries: int = 1000,
        failure_ttl: timedelta = timedelta(seconds=10),
        max_failures: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age <= timedelta(0):
            raise ConfigurationError("cache max_age must be positive")
        if max_uses < 1:
            raise ConfigurationError("cache max_uses must be at least 1")
        if max_entries < 1:
            raise ConfigurationError("cache max_entries must be at least 1")
        if failure_ttl < timedelta(0) or max_failures < 1:
            raise ConfigurationError("cache failure_ttl must not be negative and max_failures at least 1")
        self.max_age = max_age
        self.max_uses = max_uses
        self.max_entries = max_entries
        self.failure_ttl = failure_ttl
        self.max_failures = max_failures
        self._clock = clock
        self._entries: OrderedDict[Hashable, CacheEntry[object]] = OrderedDict()
        self._failures: OrderedDict[Hashable, _Failure] = OrderedDict()
        self._loading: dict[Hashable, _Loading] = {}
        self._scopes: dict[tuple[str, tuple[str, ...], int], tuple[int, object]] = {}
        self._scope_numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._counts = CacheCounts()  # of removed entries and loads; live entries add their hits
        with _gone_lock:
            _live.add(self)
        weakref.finalize(self, _retire, self._counts, self._entries)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock the age bounds are measured with (monotonic seconds)."""
        return self._clock

    def scope(self, name: str, master_key_ids: tuple[str, ...], key_store: object) -> int:
        """The number naming a keyring identity in this cache: its name, master keys and store.

        Two keyrings share cached keys only if they have the same name, the same master keys and
        the very same key store object: whatever one could unwrap, the other could too (the
        rotation engine's rate-limited copy of a keyring is such a twin). The store is held while
        its identity is known here, so its ``id`` is not reused by another store meanwhile; at
        most ``MAX_SCOPES`` identities are known (then all are forgotten, and later keyrings get
        new numbers: numbers are never reused, so nothing is ever shared by mistake).
        """
        identity = (name, master_key_ids, id(key_store))
        with self._lock:
            known = self._scopes.get(identity)
            if known is None:
                if len(self._scopes) >= MAX_SCOPES:
                    self._scopes.clear()
                known = self._scopes[identity] = (next(self._scope_numbers), key_store)
            return known[0]

    def entry(self, key_id: Hashable, load: Callable[[], T]) -> CacheEntry[T]:
        """Return a fresh entry for ``key_id`` (counting one use), loading it at most once.

        Raises:
            DecryptionError: the load failed so (now, or within ``failure_ttl``: remembered).
            Exception: whatever else ``load`` raised (not remembered).
        """
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
                if self._clock() >= cached.expires_at:  # refused to this lookup: here and lock-free
                    self._evicted(cached, "expired", refused=2 if hot is cached else 1)
                else:
                    self._evicted(cached, "used_up")
            failed = self._failures.get(key_id)
            if failed is not None:
                if self._clock() < failed.expires_at:
                    raise failed.error
                del self._failures[key_id]
            loading = self._loading.get(key_id)
            owner = loading is None
            if loading is None:
                loading = self._loading[key_id] = _Loading()
                self._counts.misses += 1
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
                        self._evicted(self._entries.popitem(last=False)[1], "capacity")
                elif isinstance(loading.error, DecryptionError) and self.failure_ttl:
                    expires = self._clock() + self.failure_ttl.total_seconds()
                    self._failures[key_id] = _Failure(loading.error, expires)
                    while len(self._failures) > self.max_failures:
                        self._failures.popitem(last=False)
            loading.done.set()
        return entry  # type: ignore[return-value]

    def detached(self, value: T) -> CacheEntry[T]:
        """An entry under this cache's bounds that is not stored in it (counting one use).

        For a key only one holder may use: a write-only producer's own data key, which no
        decryption in the process must find.
        """
        entry = CacheEntry(value, self._clock() + self.max_age.total_seconds(), self.max_uses, self._clock)
        entry.use()
        return entry

    def fresh(self, key_id: Hashable) -> Any:
        """The cached value if present and within bounds (counting one use), else None. Lock-free."""
        hot = self._entries.get(key_id)
        # CacheEntry.use() inlined: this runs once per value decrypted. The value is read before
        # the bound is checked (see CacheEntry.kill): a killed entry gives None.
        if hot is not None:
            value = hot.value
            if next(hot._uses) <= hot.max_uses and self._clock() < hot.expires_at:
                return value
        return None

    def peek(self, key_id: Hashable) -> CacheEntry[Any] | None:
        """The entry held for ``key_id``, without counting a use (its holder checks ``use()``)."""
        return self._entries.get(key_id)

    def get(self, key_id: Hashable, load: Callable[[], T]) -> T:
        while True:
            entry = self.entry(key_id, load)
            value = entry.value
            if value is not None:  # else killed between its check and here: load it again
                return value

    def evict(self, key_id: Hashable) -> None:
        """Forget ``key_id``: its key and any remembered failure."""
        with self._lock:
            entry = self._entries.pop(key_id, None)
            if entry is not None:
                self._evicted(entry, "forgotten")  # counted before the kill zeroes its bound
            self._failures.pop(key_id, None)
        if entry is not None:
            entry.kill()

    def clear(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            for entry in entries:
                self._evicted(entry, "cleared")  # counted before the kill zeroes its bound
            self._entries.clear()
            self._failures.clear()
        for entry in entries:
            entry.kill()

    def counts(self) -> CacheCounts:
        """This cache's hits, misses and evictions so far, and the keys it holds now."""
        with self._lock:
            return _with_live(self._counts, self._entries)

    def _evicted(self, entry: CacheEntry[object], reason: str, refused: int = 0) -> None:
        # Called with the lock held: the entry's hits move to the cache's own count.
        self._counts.hits += entry.hits(refused)
        self._counts.evictions[reason] += 1

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"DataKeyCache({len(self._entries)} keys, max_age={self.max_age}, "
            f"max_uses={self.max_uses}, max_entries={self.max_entries})"
        )


_live: weakref.WeakSet[DataKeyCache] = weakref.WeakSet()
_gone = CacheCounts()  # what caches since collected did, so process totals never go down
_gone_lock = threading.Lock()


def _with_live(counts: CacheCounts, entries: OrderedDict[Hashable, CacheEntry[object]]) -> CacheCounts:
    out = CacheCounts(counts.hits, counts.misses, Counter(counts.evictions), len(entries))
    out.hits += sum(entry.hits() for entry in list(entries.values()))
    return out


def _retire(counts: CacheCounts, entries: OrderedDict[Hashable, CacheEntry[object]]) -> None:
    """A cache was collected: keep what it did in the process totals (its keys are gone)."""
    done = _with_live(counts, entries)
    done.keys = 0
    with _gone_lock:
        _gone.add(done)


def process_totals() -> CacheCounts:
    """Every data-key cache of this process together, those since collected included."""
    with _gone_lock:
        total = CacheCounts(_gone.hits, _gone.misses, Counter(_gone.evictions))
        live = list(_live)
    for cache in live:
        total.add(cache.counts())
    return total
