"""The one way fieldcrypt reads a host library's private attribute: present, or a loud error.

SQLAlchemy, Alembic and PynamoDB have no public accessor for a few things fieldcrypt must see
(the SET clause of an UPDATE, the ORDER BY of a SELECT, a model's key names). Each integration
keeps those reads in its own ``_compat`` module, and every read goes through :func:`internal`.
A ``getattr(obj, name, default)`` would hide a renamed internal behind the default and, say,
let an ORDER BY on ciphertext through or leave a blind index stale; this raises instead.
"""

from __future__ import annotations

from importlib import metadata
from types import ModuleType
from typing import Any

from fieldcrypt.errors import ConfigurationError


def host_version(distribution: str) -> str:
    """The installed version of ``distribution`` (for error messages and tests)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def internal(obj: Any, name: str, *, host: str, why: str) -> Any:
    """``obj.<name>``, or a ConfigurationError naming the host's version when it is gone.

    Args:
        obj: the host object (or class) that should carry the attribute.
        name: the private attribute's name.
        host: the distribution name of the host library ("SQLAlchemy", "alembic", "pynamodb").
        why: what fieldcrypt reads it for, finishing "fieldcrypt reads it to ...".

    Raises:
        ConfigurationError: the installed host has no such attribute.
    """
    try:
        return getattr(obj, name)
    except AttributeError as exc:
        owner = obj.__name__ if isinstance(obj, (type, ModuleType)) else type(obj).__name__
        raise ConfigurationError(
            f"{host} {host_version(host)} has no {owner}.{name}, which fieldcrypt reads to {why}; "
            f"install a {host} version within the range fieldcrypt declares, or upgrade fieldcrypt"
        ) from exc
