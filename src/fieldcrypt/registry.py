"""Keyrings by name, so models can name a keyring before the application configures it."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar, overload

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring
from fieldcrypt.tenants import TenantKeyrings

T = TypeVar("T")

_keyrings: dict[str, Keyring] = {}
_tenant_keyrings: dict[str, TenantKeyrings] = {}
_lock = threading.Lock()


class _Generation:
    """Bumped by every register/unregister, so cached resolutions notice a replaced keyring."""

    value = 0


_generation = _Generation()


class Follower(Protocol):
    """Something that resolved a keyring by name and must resolve again after a change."""

    def reset(self) -> None: ...


_followers: weakref.WeakSet[Follower] = weakref.WeakSet()


def _changed() -> None:
    """Under ``_lock``: a keyring was registered or unregistered."""
    _generation.value += 1
    for follower in list(_followers):
        follower.reset()


@overload
def register(keyring: Keyring, *, replace: bool = False) -> Keyring: ...
@overload
def register(keyring: TenantKeyrings, *, replace: bool = False) -> TenantKeyrings: ...
def register(keyring: Keyring | TenantKeyrings, *, replace: bool = False) -> Keyring | TenantKeyrings:
    """Make ``keyring`` (a :class:`Keyring` or :class:`TenantKeyrings`) resolvable by its name.
    Registering a second one under a taken name is an error unless ``replace=True`` (tests and
    reconfiguration), so two configurations never race."""
    if not isinstance(keyring, (Keyring, TenantKeyrings)):
        raise ConfigurationError("register takes a Keyring or TenantKeyrings")
    with _lock:
        existing = _keyrings.get(keyring.name) or _tenant_keyrings.get(keyring.name)
        if existing is not None and existing is not keyring and not replace:
            raise ConfigurationError(
                f"a keyring named {keyring.name!r} is already registered; pass replace=True to swap it"
            )
        _keyrings.pop(keyring.name, None)
        _tenant_keyrings.pop(keyring.name, None)
        if isinstance(keyring, TenantKeyrings):
            _tenant_keyrings[keyring.name] = keyring
        else:
            _keyrings[keyring.name] = keyring
        _changed()
    return keyring


def unregister(name: str) -> None:
    with _lock:
        _keyrings.pop(name, None)
        _tenant_keyrings.pop(name, None)
        _changed()


def get_keyring(name: str) -> Keyring:
    """The registered keyring called ``name``.

    Raises:
        ConfigurationError: nothing is registered under that name, or it is per tenant.
    """
    return _lookup(
        name,
        _keyrings,
        _tenant_keyrings,
        "is per tenant (TenantKeyrings): a column or attribute using it must name its tenant "
        'column or attribute (tenant="tenant_id")',
    )


def get_tenant_keyrings(name: str) -> TenantKeyrings:
    """The registered :class:`TenantKeyrings` called ``name``.

    Raises:
        ConfigurationError: nothing is registered under that name, or it is an ordinary keyring.
    """
    return _lookup(
        name,
        _tenant_keyrings,
        _keyrings,
        "is one keyring, not per tenant: drop tenant=... from the column or attribute, or "
        "register TenantKeyrings under that name",
    )


def _lookup(name: str, kind: dict[str, T], other_kind: Mapping[str, object], if_other: str) -> T:
    try:
        return kind[name]
    except KeyError:
        if name in other_kind:
            raise ConfigurationError(f"keyring {name!r} {if_other}") from None
        known = ", ".join(sorted({*_keyrings, *_tenant_keyrings})) or "none"
        raise ConfigurationError(
            f"no keyring named {name!r} is registered (registered: {known}); "
            "call fieldcrypt.register(Keyring(...)) at application start-up"
        ) from None


def registered() -> dict[str, Keyring]:
    with _lock:
        return dict(_keyrings)


def registered_tenant_keyrings() -> dict[str, TenantKeyrings]:
    with _lock:
        return dict(_tenant_keyrings)


def watch(follower: Follower) -> int:
    """Call ``follower.reset()`` after every register/unregister (held weakly, so it leaves with
    its owner), for code that keeps what it resolved rather than checking per value
    (:mod:`fieldcrypt.reading`). Returns the generation now: a follower that resolves compares it
    before and after, so a change racing its resolution is never missed."""
    with _lock:
        _followers.add(follower)
        return _generation.value


def generation_now() -> int:
    return _generation.value


def reset_followers() -> None:
    """Make every follower resolve again (a keyring's methods were wrapped: fieldcrypt.metrics)."""
    with _lock:
        for follower in list(_followers):
            follower.reset()


def follow(name: str) -> Callable[[], Keyring]:
    """A function returning the keyring registered as ``name`` *now*, for code that runs per value.

    It resolves by name once and again only after a ``register``/``unregister`` (one integer
    comparison per call otherwise), so ``register(..., replace=True)`` takes effect at once for
    column types already in use by an engine, rather than being silently ignored by a cache.

    Raises (when called):
        ConfigurationError: nothing is registered under that name.
    """
    return _following(get_keyring, name)


def follow_tenants(name: str) -> Callable[[], TenantKeyrings]:
    """As :func:`follow`, for the :class:`TenantKeyrings` registered as ``name``."""
    return _following(get_tenant_keyrings, name)


def _following(resolve: Callable[[str], T], name: str) -> Callable[[], T]:
    seen = -1
    found: T | None = None

    def current() -> T:
        nonlocal seen, found
        generation = _generation.value
        if generation != seen or found is None:
            found = resolve(name)
            seen = generation
        return found

    return current
