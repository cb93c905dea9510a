"""Where a per-column path keeps what it prepared: one state per keyring it uses.

A column's reader (:mod:`fieldcrypt.reading`) and indexer (:mod:`fieldcrypt.indexing`) resolve
once what would otherwise be looked up per value. A column of one keyring has one such state; a
per-tenant column has one per tenant keyring, kept in that keyring's scratch in
:class:`~fieldcrypt.tenants.TenantKeyrings` (``held_for``), so it is held and dropped with the
keyring itself: a tenant dropped from the held keyrings (least recently used, or ``forget``)
takes its prepared states along, and its next value prepares them again from the new keyring.

Both kinds are reset by the registry on every register/unregister (and when metrics start
counting, :func:`fieldcrypt.registry.reset_followers`): the one state goes back to unresolved,
and the per-tenant states are filed under a new token, so none prepared before is found again.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fieldcrypt import registry
from fieldcrypt.keyring import Keyring
from fieldcrypt.tenants import Held, TenantKeyrings

S = TypeVar("S")
# Per-column states one tenant keyring's scratch holds; past it the scratch starts again (states
# filed under tokens from before a registry change are never found, so they are only garbage).
MAX_STATES_PER_KEYRING = 256


class Following(Generic[S]):
    """One column path's resolution: the state of its keyring (``one[0]``), or, per tenant, the
    tenant family and the token its states are filed under in each tenant keyring's scratch
    (``family[0]``). Per-value code reads the lists directly (no call when nothing changed).

    Args:
        keyring: a keyring, a :class:`TenantKeyrings`, or the name of a registered one.
        unresolved: the state that knows nothing (the next value takes the slow path).
        per_tenant: whether ``keyring`` is a tenant family.
    """

    __slots__ = ("__weakref__", "family", "keyring", "one", "per_tenant", "unresolved")

    def __init__(self, keyring: Keyring | TenantKeyrings | str, unresolved: S, *, per_tenant: bool) -> None:
        self.keyring = keyring
        self.unresolved = unresolved
        self.per_tenant = per_tenant
        self.one: list[S] = [unresolved]
        self.family: list[tuple[TenantKeyrings | None, object]] = [(None, object())]
        registry.watch(self)  # also for a keyring given as such: metrics may wrap its methods

    def reset(self) -> None:
        self.one[0] = self.unresolved
        self.family[0] = (None, object())

    def resolve_keyring(self) -> tuple[Keyring, int]:
        """The keyring this column uses now, and the registry generation it was resolved at."""
        seen = registry.generation_now()
        keyring = self.keyring
        if isinstance(keyring, str):
            keyring = registry.get_keyring(keyring)
        assert isinstance(keyring, Keyring)
        return keyring, seen

    def resolve_family(self) -> tuple[TenantKeyrings, object]:
        """The tenant family this column uses now, and the token of this resolution's states.

        Raises:
            ConfigurationError: nothing (or an ordinary keyring) is registered under the name.
        """
        seen = registry.generation_now()
        family = self.keyring
        if isinstance(family, str):
            family = registry.get_tenant_keyrings(family)
        assert isinstance(family, TenantKeyrings)
        resolved = (family, object())
        self.family[0] = resolved
        if registry.generation_now() != seen:  # a change raced this resolution: not kept
            self.reset()
        return resolved

    def state_for(self, tenant: Any) -> tuple[S, Held, object]:
        """Per tenant: the state prepared for ``tenant``'s keyring (or ``unresolved``), that
        keyring with its scratch, and the token states are filed under now.

        Raises:
            ConfigurationError: an unusable tenant id, or no tenant family under the name.
        """
        family, token = self.family[0]
        if family is None:
            family, token = self.resolve_family()
        held = family.held_for(tenant)
        return held[1].get(token, self.unresolved), held, token

    def keep(self, state: S, seen: int, scratch: dict[object, Any] | None, token: object) -> None:
        """Keep ``state`` for the next values: as the one state, or in a tenant keyring's
        ``scratch`` under ``token``; not if the registry changed since generation ``seen``."""
        if scratch is None:
            self.one[0] = state
            if registry.generation_now() != seen:
                self.one[0] = self.unresolved
            return
        if registry.generation_now() != seen:
            return  # filed under a token that may already be stale: prepared again next time
        if len(scratch) >= MAX_STATES_PER_KEYRING:
            scratch.clear()
        scratch[token] = state
