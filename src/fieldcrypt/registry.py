"""Keyrings by name, so models can name a keyring before the application configures it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring

_keyrings: dict[str, Keyring] = {}
_lock = threading.Lock()


class _Generation:
    """Bumped by every register/unregister, so cached resolutions notice a replaced keyring."""

    value = 0


_generation = _Generation()


def register(keyring: Keyring, *, replace: bool = False) -> Keyring:
    """Make ``keyring`` resolvable by its name. Registering a second one under a taken name is an
    error unless ``replace=True`` (tests and reconfiguration), so two configurations never race."""
    with _lock:
        existing = _keyrings.get(keyring.name)
        if existing is not None and existing is not keyring and not replace:
            raise ConfigurationError(
                f"a keyring named {keyring.name!r} is already registered; pass replace=True to swap it"
            )
        _keyrings[keyring.name] = keyring
        _generation.value += 1
    return keyring


def unregister(name: str) -> None:
    with _lock:
        _keyrings.pop(name, None)
        _generation.value += 1


def get_keyring(name: str) -> Keyring:
    """The registered keyring called ``name``.

    Raises:
        ConfigurationError: nothing is registered under that name.
    """
    try:
        return _keyrings[name]
    except KeyError:
        known = ", ".join(sorted(_keyrings)) or "none"
        raise ConfigurationError(
            f"no keyring named {name!r} is registered (registered: {known}); "
            "call fieldcrypt.register(Keyring(...)) at application start-up"
        ) from None


def registered() -> dict[str, Keyring]:
    with _lock:
        return dict(_keyrings)


def follow(name: str) -> Callable[[], Keyring]:
    """A function returning the keyring registered as ``name`` *now*, for code that runs per value.

    It resolves by name once and again only after a ``register``/``unregister`` (one integer
    comparison per call otherwise), so ``register(..., replace=True)`` takes effect at once for
    column types already in use by an engine, rather than being silently ignored by a cache.

    Raises (when called):
        ConfigurationError: nothing is registered under that name.
    """
    seen = -1
    keyring: Keyring | None = None

    def current() -> Keyring:
        nonlocal seen, keyring
        generation = _generation.value
        if generation != seen or keyring is None:
            keyring = get_keyring(name)
            seen = generation
        return keyring

    return current
