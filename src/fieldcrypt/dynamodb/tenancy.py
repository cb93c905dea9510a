"""An item's keyring chosen by its tenant: what the item encryptor and the PynamoDB model share.

An attribute declared with ``tenant="tenant_id"`` names a registered
:class:`~fieldcrypt.TenantKeyrings`; each item's value is encrypted under the keyring of the
tenant its ``tenant_id`` attribute holds, chosen before the write. Every tenant's keyring has its
own data keys, so a value copied into another tenant's item names a data key that keyring does
not have, and fails as a :class:`~fieldcrypt.errors.DecryptionError` (docs/tenants.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.registry import get_tenant_keyrings

if TYPE_CHECKING:
    from fieldcrypt.keyring import Keyring
    from fieldcrypt.tenants import TenantKeyrings


def check_declaration(keyring: object, tenant: object, where: str) -> None:
    """Refuse a ``tenant=`` that could not choose a keyring, when the attribute is declared.

    Raises:
        ConfigurationError: ``tenant`` is not an attribute name, or ``keyring`` is one fixed
            :class:`Keyring` (a tenant's keyring comes from a TenantKeyrings, by name or object).
    """
    from fieldcrypt.keyring import Keyring

    if not isinstance(tenant, str) or not tenant:
        raise ConfigurationError(
            f"{where}: tenant= names the attribute holding the tenant id, e.g. 'tenant_id'"
        )
    if isinstance(keyring, Keyring):
        raise ConfigurationError(
            f"{where}: tenant={tenant!r} chooses a keyring per tenant, so keyring= must name a "
            "registered TenantKeyrings (or be one), not a single Keyring"
        )


def resolve(keyring: str | TenantKeyrings) -> TenantKeyrings:
    """The TenantKeyrings a declaration names (a registered name, or the object itself)."""
    return get_tenant_keyrings(keyring) if isinstance(keyring, str) else keyring


def keyring_for(keyring: str | TenantKeyrings, tenant: Any, *, attribute: str, where: str) -> Keyring:
    """The keyring of ``tenant`` (the value of the item's ``attribute``).

    Raises:
        ConfigurationError: the item has no tenant (it must be set before a write, and read with
            the item: a projection without it cannot choose the keyring), or an unusable tenant id.
    """
    if tenant is None:
        raise ConfigurationError(
            f"{where}: the item has no tenant attribute {attribute!r}; the keyring is chosen by "
            f"tenant, so set {attribute} before writing and read it with the item"
        )
    return resolve(keyring).keyring_for(tenant)


def tenant_in(item: Mapping[str, Mapping[str, Any]], attribute: str, where: str) -> str | int | None:
    """The tenant id in a raw DynamoDB item (``{"S": ...}`` or an integer ``{"N": ...}``), or None.

    Raises:
        ConfigurationError: a tenant attribute of another type (a tenant id is a string or an integer).
    """
    value = item.get(attribute)
    if value is None:
        return None
    if "S" in value:
        return str(value["S"])
    if "N" in value and str(value["N"]).lstrip("-").isdigit():
        return int(value["N"])
    raise ConfigurationError(f"{where}: tenant attribute {attribute!r} must hold a string or an integer")
