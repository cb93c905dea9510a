"""One column's per-value write path, resolved once per column instead of once per value.

A column's bind processor runs once per value written. :meth:`Keyring.encrypt` looks up, per
value, the keyring's current data key, its cache entry and the associated data (header,
namespace, place), and builds that associated data again. A writer keeps them while the keyring
keeps that current key: per value it checks exactly what ``encrypt`` checks (the key is still the
keyring's current one, the cache entry's use and age bounds, the keyring's own encryption budget
and refresh time), then seals with a fresh random nonce (:meth:`fieldcrypt._aead.Aead.seal`).
Anything else (no current key yet, a bound reached, a registry change, a keyring whose
``encrypt`` is counted by :mod:`fieldcrypt.metrics`) goes through :meth:`Keyring.encrypt`, the
one place that rotates, refreshes and raises, so this path writes exactly what ``encrypt`` writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from fieldcrypt import registry
from fieldcrypt._aead import Aead
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place

# (keyring, its current key as resolved, that key's header, associated data, until when both the
# key's cache entry and the keyring's refresh time hold (monotonic))
_State = tuple[Any, Any, bytes, bytes, float]
# Before the first value and after every registry change: its "keyring" has a current key that no
# state names, so the next value takes the slow path, which resolves.
_UNRESOLVED: _State = (SimpleNamespace(_current=object()), None, b"", b"", -math.inf)


class _Resolved:
    """One column's resolution; reset by the registry whenever it follows a name."""

    __slots__ = ("__weakref__", "keyring", "place", "state")

    def __init__(self, keyring: Keyring | str, place: Place) -> None:
        self.keyring = keyring
        self.place = place
        self.state: list[_State] = [_UNRESOLVED]
        registry.watch(self)  # also for a Keyring given as such: metrics may wrap its encrypt

    def reset(self) -> None:
        self.state[0] = _UNRESOLVED

    def seal_slowly(self, data: bytes) -> bytes:
        """:meth:`Keyring.encrypt` (every check, rotation and error), then keep its current key
        for the next values of this column."""
        seen = registry.generation_now()
        keyring = self.keyring if isinstance(self.keyring, Keyring) else registry.get_keyring(self.keyring)
        blob = keyring.encrypt(data, self.place)
        current = keyring._current
        # Kept only where encrypt itself would take its fast path: a counted keyring (metrics
        # wraps its encrypt) always goes through it, and a cache on another clock than
        # time.monotonic keeps its own time, which one call per value could not read.
        if current is None or "encrypt" in vars(keyring) or keyring.cache.clock is not time.monotonic:
            return blob
        associated = current.header + keyring.associated_place(self.place)
        until = min(current.entry.expires_at, current.refresh_at)
        self.state[0] = (keyring, current, current.header, associated, until)
        if registry.generation_now() != seen:  # a registry change raced this: not kept
            self.state[0] = _UNRESOLVED
        return blob


def column_writer(keyring: Keyring | str, place: Place) -> Callable[[bytes], bytes]:
    """``keyring.encrypt(data, place)`` for one column's (already encoded) values.

    ``keyring``: a keyring, or the name of a registered one (followed across ``register``).

    Raises (when called): what :meth:`Keyring.encrypt` raises.
    """
    resolved = _Resolved(keyring, place)
    box = resolved.state
    monotonic = time.monotonic

    def seal(data: bytes) -> bytes:
        keyring_, current, header, associated, until = box[0]
        if keyring_._current is current:
            entry = current.entry
            aead: Aead = entry.value  # before the bound: see CacheEntry.kill (a killed entry holds None)
            # Keyring.encrypt's checks, in its order: the cache entry's use count (CacheEntry.use,
            # inlined; a killed entry fails it), the keyring's per-key budget, then the time.
            if (
                next(entry._uses) <= entry.max_uses
                and next(current.encryptions) <= current.limit
                and monotonic() < until
            ):
                return header + aead.seal(data, associated)
        # A bound reached (the value may have been counted once more above: the budget only
        # runs out sooner), or nothing resolved: the long way.
        return resolved.seal_slowly(data)

    return seal
