"""Tenant ids and the keyring names derived from them (``pii/acme``: family, a slash, tenant).

A per-tenant keyring is an ordinary :class:`~fieldcrypt.keyring.Keyring` whose name carries its
tenant: its data keys, anchor, cache scope and KMS encryption context are its own. Ordinary
keyring names hold only letters, digits, ``-`` and ``_``, so no name of one tenant's keyring can
equal another's, or an ordinary keyring's.
"""

from __future__ import annotations

import re
import uuid

from fieldcrypt.errors import ConfigurationError

SEPARATOR = "/"
MAX_TENANT_CHARS = 100
MAX_NAME_CHARS = 128  # the key store's keyring column (stores/sql.py)
_TENANT = re.compile(rf"[A-Za-z0-9._:@-]{{1,{MAX_TENANT_CHARS}}}")

TenantId = str | int | uuid.UUID


def is_family_name(name: object) -> bool:
    """True for an ordinary keyring name: letters, digits, ``-`` or ``_``."""
    return isinstance(name, str) and bool(name) and name.replace("_", "").replace("-", "").isalnum()


def canonical_tenant(tenant: object) -> str:
    """The tenant id as stored in keyring names: a str as given, an int in decimal, a UUID in
    its lowercase hyphenated form.

    Raises:
        ConfigurationError: None, a bool, another type, or a string outside letters, digits and
            ``. _ : @ -`` (at most 100 characters).
    """
    if isinstance(tenant, str):
        text = tenant
    elif isinstance(tenant, (int, uuid.UUID)) and not isinstance(tenant, bool):
        text = str(tenant)
    else:
        raise ConfigurationError(
            f"a tenant id must be a str, int or UUID, not {type(tenant).__name__} "
            "(a row without its tenant cannot choose a keyring)"
        )
    if _TENANT.fullmatch(text) is None:
        # Shortened: the id may be long, and it is not secret but need not fill a log line.
        raise ConfigurationError(
            f"tenant id {text[:40]!r} is unusable: use 1 to {MAX_TENANT_CHARS} letters, digits or '. _ : @ -'"
        )
    return text


def keyring_name(family: str, tenant: str) -> str:
    """The name of ``family``'s keyring for the (canonical) ``tenant``.

    Raises:
        ConfigurationError: the name would not fit the key store's keyring column.
    """
    name = f"{family}{SEPARATOR}{tenant}"
    if len(name) > MAX_NAME_CHARS:
        raise ConfigurationError(
            f"keyring {family!r} with tenant {tenant[:40]!r} makes a name longer than "
            f"{MAX_NAME_CHARS} characters: shorten the keyring name or the tenant id"
        )
    return name


def split_name(name: str) -> tuple[str, str | None]:
    """(family, tenant) of a keyring name; tenant None for an ordinary keyring.

    Raises:
        ConfigurationError: neither an ordinary name nor ``family/tenant``.
    """
    family, separator, tenant = name.partition(SEPARATOR) if isinstance(name, str) else ("", "", "")
    if is_family_name(family) and not separator:
        return family, None
    if is_family_name(family) and _TENANT.fullmatch(tenant) and len(name) <= MAX_NAME_CHARS:
        return family, tenant
    raise ConfigurationError(
        f"keyring name {name!r} must be letters, digits, '-' or '_' "
        f"(a tenant's keyring: that, '{SEPARATOR}' and the tenant id)"
    )
