"""One searchable column's token path, resolved once per column instead of once per value.

A token is ``keyring.blind_index(data, column)`` after ``index_records.check(keyring, column,
normalizer, writing=True)``. Both look things up per call: the registered keyring, whether the
column's index record was checked, the keyring's usable index keys (re-read every
``refresh_every``), the current key in the data-key cache and the HMAC state after the column's
prefix. An indexer keeps them while they hold: until the keyring's index keys are re-read or
changed (rotation, ``refresh``), the record check's trust runs out, the key's cache entry is past
its use or age bound or dropped, or the registry changes. Per value it checks exactly those, then
copies the prepared HMAC state; anything else goes through the two calls above, which decide
what to create, refuse or raise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from fieldcrypt import _aead, index_records, registry
from fieldcrypt.cache import CacheEntry
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place

# (keyring, its index-key set as read, until when all of it holds (monotonic), the current index
# key's cache entry, the column's HMAC prefix, the cache's clock, token length)
_State = tuple[Keyring, object, float, CacheEntry[_aead.HmacKey], bytes, Callable[[], float], int]
_UNRESOLVED: _State = (None, None, -math.inf, None, b"", time.monotonic, 0)  # type: ignore[assignment]


class _Indexer:
    """The resolution behind one column's indexer; reset by the registry when it follows a name."""

    __slots__ = ("__weakref__", "column", "keyring", "normalizer", "state")

    def __init__(
        self, keyring: Keyring | str, column: Place, normalizer: Callable[[Any], Any] | None
    ) -> None:
        self.keyring = keyring
        self.column = column
        self.normalizer = normalizer
        self.state: list[_State] = [_UNRESOLVED]
        if isinstance(keyring, str):
            registry.watch(self)

    def reset(self) -> None:
        self.state[0] = _UNRESOLVED

    def token_slowly(self, data: bytes) -> bytes:
        """Check the record, compute the token the long way, and prepare the next ones."""
        seen = registry.generation_now()
        keyring = self.keyring if isinstance(self.keyring, Keyring) else registry.get_keyring(self.keyring)
        index_records.check(keyring, self.column, self.normalizer, writing=True)
        token = keyring.blind_index(data, self.column)
        prepared = keyring.index_preparation(self.column)
        trusted_until = index_records.trusted_until(keyring, self.column)
        if prepared is not None and trusted_until > time.monotonic():
            marker, refresh_at, entry, prefix = prepared
            until = min(refresh_at, trusted_until)
            clock = keyring.cache.clock
            self.state[0] = (keyring, marker, until, entry, prefix, clock, keyring.blind_index_bytes)
            if registry.generation_now() != seen:  # a registry change raced this: not kept
                self.state[0] = _UNRESOLVED
        return token


def column_indexer(
    keyring: Keyring | str, column: Place, normalizer: Callable[[Any], Any] | None
) -> Callable[[bytes], bytes]:
    """The blind-index token of already-encoded (and normalised) ``data`` for ``column``.

    ``keyring``: a keyring, or the name of a registered one (followed across ``register``).
    ``normalizer`` is what the column's index record names (checked, not applied here).

    Raises (when called): what ``index_records.check`` and ``Keyring.blind_index`` raise.
    """
    indexer = _Indexer(keyring, column, normalizer)
    box = indexer.state
    monotonic = time.monotonic

    def token(data: bytes) -> bytes:
        keyring_, marker, until, entry, prefix, clock, size = box[0]
        if monotonic() < until and keyring_._blind_records is marker:
            hmac_key = entry.value  # before the bound: see CacheEntry.kill
            # CacheEntry.use() inlined: the index key's use count and age bound, on every token.
            if next(entry._uses) <= entry.max_uses and clock() < entry.expires_at:
                state = hmac_key.states.get(prefix)
                if state is not None:
                    running = state.copy()
                    running.update(data)
                    return running.finalize()[:size]
        return indexer.token_slowly(data)

    return token
