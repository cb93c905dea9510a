"""Keyrings by name, so models can name a keyring before the application configures it."""

from __future__ import annotations

import threading

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring

_keyrings: dict[str, Keyring] = {}
_lock = threading.Lock()


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
    return keyring


def unregister(name: str) -> None:
    with _lock:
        _keyrings.pop(name, None)


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
