"""One searchable column's token path, resolved once per column instead of once per value.

A token is ``keyring.blind_index(data, column)`` after ``index_records.check(keyring, column,
normalizer, writing=True)``. Both look things up per call: the registered keyring, whether the
column's index record was checked, the keyring's usable index keys (re-read every
``refresh_every``), the current key in the data-key cache and the HMAC state after the column's
prefix. An indexer keeps them while they hold: until the keyring's index keys are re-read or
changed (rotation, ``refresh``), the record check's trust runs out, the key's cache entry is past
its use or age bound or dropped, or the registry changes. Per value it checks exactly those, then
copies the prepared HMAC state; anything else goes through the two calls above, which decide
what to create, refuse or raise. A per-tenant column keeps the same per tenant keyring, with
that keyring while :class:`~fieldcrypt.tenants.TenantKeyrings` holds it (:mod:`fieldcrypt.following`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from fieldcrypt import _aead, index_records, registry
from fieldcrypt.cache import CacheEntry
from fieldcrypt.following import Following
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place
from fieldcrypt.tenants import Held, TenantKeyrings

# (keyring, its index-key set as read, until when all of it holds (monotonic), the current index
# key's cache entry, the column's HMAC prefix, the cache's clock, token length)
_State = tuple[Keyring, object, float, CacheEntry[_aead.HmacKey], bytes, Callable[[], float], int]
_UNRESOLVED: _State = (None, None, -math.inf, None, b"", time.monotonic, 0)  # type: ignore[assignment]


class _Indexer(Following[_State]):
    """The resolution behind one column's indexer, per keyring (:mod:`fieldcrypt.following`)."""

    __slots__ = ("column", "normalizer")

    def __init__(
        self,
        keyring: Keyring | TenantKeyrings | str,
        column: Place,
        normalizer: Callable[[Any], Any] | None,
        *,
        per_tenant: bool,
    ) -> None:
        super().__init__(keyring, _UNRESOLVED, per_tenant=per_tenant)
        self.column = column
        self.normalizer = normalizer

    def token_slowly(self, data: bytes, held: Held | None = None, token: object = None) -> bytes:
        """Check the record, compute the token the long way, and prepare the next ones (under
        this tenant's keyring, when ``held`` is a tenant's keyring and scratch)."""
        if held is None:
            keyring, seen = self.resolve_keyring()
        else:
            keyring, seen = held[0], registry.generation_now()
        index_records.check(keyring, self.column, self.normalizer, writing=True)
        result = keyring.blind_index(data, self.column)
        prepared = keyring.index_preparation(self.column)
        trusted_until = index_records.trusted_until(keyring, self.column)
        if prepared is not None and trusted_until > time.monotonic():
            marker, refresh_at, entry, prefix = prepared
            until = min(refresh_at, trusted_until)
            clock = keyring.cache.clock
            state = (keyring, marker, until, entry, prefix, clock, keyring.blind_index_bytes)
            self.keep(state, seen, None if held is None else held[1], token)
        return result


def column_indexer(
    keyring: Keyring | TenantKeyrings | str,
    column: Place,
    normalizer: Callable[[Any], Any] | None,
    *,
    per_tenant: bool = False,
) -> Callable[..., bytes]:
    """``token(data, tenant=None)``: the blind-index token of already-encoded (and normalised)
    ``data`` for ``column``.

    ``keyring``: a keyring, or the name of a registered one (followed across ``register``); for
    ``per_tenant``, a :class:`TenantKeyrings` or its registered name, and ``tenant`` chooses its
    keyring (what is prepared is kept per tenant keyring, dropped with it).
    ``normalizer`` is what the column's index record names (checked, not applied here).

    Raises (when called): what ``index_records.check``, ``Keyring.blind_index`` and
    :meth:`TenantKeyrings.held_for` raise.
    """
    indexer = _Indexer(keyring, column, normalizer, per_tenant=per_tenant)
    box = indexer.one
    monotonic = time.monotonic

    def token(data: bytes, tenant: Any = None) -> bytes:
        held: Held | None
        if per_tenant:
            state, held, key = indexer.state_for(tenant)
        else:
            state, held, key = box[0], None, None
        keyring_, marker, until, entry, prefix, clock, size = state
        if monotonic() < until and keyring_._blind_records is marker:
            hmac_key = entry.value  # before the bound: see CacheEntry.kill
            # CacheEntry.use() inlined: the index key's use count and age bound, on every token.
            if next(entry._uses) <= entry.max_uses and clock() < entry.expires_at:
                state_ = hmac_key.states.get(prefix)
                if state_ is not None:
                    running = state_.copy()
                    running.update(data)
                    return running.finalize()[:size]
        return indexer.token_slowly(data, held, key)

    return token
