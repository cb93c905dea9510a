"""Keyrings per tenant: one keyring family whose keys belong to each tenant (issue 14).

``TenantKeyrings("pii", key_store=..., master_key_for=...)`` gives each tenant its own
:class:`~fieldcrypt.keyring.Keyring`, named ``pii/<tenant>``: its own data keys, blind-index keys
and anchor in the shared key store, wrapped under the master key the application's supplier
returns for that tenant (a customer's own KMS key, or a shared one). A value is bound to its
tenant through its data key: another tenant's keyring refuses a data key filed under another
keyring name, and KMS (or the local master key) refuses a wrap presented under another
keyring's encryption context, so a value copied into another tenant's row fails to decrypt.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from fieldcrypt import tenant_ids
from fieldcrypt.cache import DataKeyCache
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.master import LocalMasterKey, MasterKey
from fieldcrypt.stores.base import KeyStore
from fieldcrypt.stores.memory import MemoryKeyStore
from fieldcrypt.subjects import SUBJECTS_SUFFIX
from fieldcrypt.tenant_ids import TenantId

__all__ = ["Held", "MasterKeySupplier", "TenantId", "TenantKeyrings"]

# The application's supplier: tenant id -> its master key, or (master key, *also-decrypt keys)
# while that tenant moves to a new key.
MasterKeySupplier = Callable[[str], "MasterKey | Sequence[MasterKey]"]
# A held tenant's keyring and the scratch per-column paths keep for it (TenantKeyrings.held_for).
Held = tuple[Keyring, dict[object, Any]]
# Types whose str() is the canonical id (checked again when the keyring is made).
_DECIMAL_OR_UUID = (int, uuid.UUID)


class TenantKeyrings:
    """A keyring per tenant, made on first use from the application's master-key supplier.

    Args:
        name: the family name columns and attributes refer to (``keyring="pii"``).
        key_store: the one store holding every tenant's records (each under ``name/tenant``).
        master_key_for: called with the canonical tenant id (``str``; an int in decimal, a UUID
            lowercase): returns the tenant's master key, or a sequence (the key that wraps new
            data keys, then keys that may also unwrap, as during a move to a new KMS key).
        max_tenants: keyrings held at once (least recently used dropped first); a dropped
            tenant's next value makes its keyring again: one supplier call, one key-store read.
        keyring_options: :class:`~fieldcrypt.keyring.Keyring` keyword options, the same for every
            tenant. ``cache`` defaults to one cache shared by all tenants (its ``max_entries``
            bounds the keys held, whatever the number of tenants); ``anchor_id``, which pins one
            keyring's anchor, must here be a function tenant -> fingerprint (or None).

    Raises:
        ConfigurationError: at construction, for a bad option; from :meth:`keyring_for`, for an
            unusable tenant id or a supplier that returns no master key.
    """

    def __init__(
        self,
        name: str,
        *,
        key_store: KeyStore,
        master_key_for: MasterKeySupplier,
        max_tenants: int = 1024,
        **keyring_options: Any,
    ) -> None:
        if not tenant_ids.is_family_name(name):
            raise ConfigurationError(f"keyring name {name!r} must be letters, digits, '-' or '_'")
        if not isinstance(key_store, KeyStore):
            raise ConfigurationError("key_store must be a KeyStore (SqlKeyStore, MemoryKeyStore...)")
        if not callable(master_key_for):
            raise ConfigurationError("master_key_for must be a function: tenant id -> master key")
        if isinstance(max_tenants, bool) or not isinstance(max_tenants, int) or max_tenants < 1:
            raise ConfigurationError("max_tenants must be a positive int")
        anchor_id = keyring_options.pop("anchor_id", None)
        if anchor_id is not None and not callable(anchor_id):
            raise ConfigurationError(
                "anchor_id pins one keyring's anchor, and every tenant has its own: pass a function "
                "tenant -> anchor fingerprint (or None)"
            )
        keyring_options.setdefault("cache", DataKeyCache())
        # Options are checked now, not at the first tenant's first value.
        Keyring(name, LocalMasterKey.generate(), MemoryKeyStore(), **keyring_options)
        self.name = name
        self.key_store = key_store
        self.max_tenants = max_tenants
        self.cache: DataKeyCache = keyring_options["cache"]
        self._master_key_for = master_key_for
        self._anchor_id_for: Callable[[str], str | None] | None = anchor_id
        self._options = keyring_options
        # tenant -> (its keyring, the scratch of per-column paths prepared for that keyring)
        self._keyrings: OrderedDict[str, Held] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}

    def keyring_for(self, tenant: TenantId) -> Keyring:
        """The keyring of ``tenant`` (made on first use; thread-safe; one supplier call per
        tenant at a time).

        Raises:
            ConfigurationError: an unusable tenant id, or the supplier returned no master key.
        """
        return self.held_for(tenant)[0]

    def held_for(self, tenant: TenantId) -> Held:
        """The keyring of ``tenant`` (as :meth:`keyring_for`) and its scratch: a dict where
        per-column paths (:mod:`fieldcrypt.following`) keep what they prepared for this keyring.
        The scratch is held and dropped with the keyring (least recently used, :meth:`forget`),
        so nothing prepared for a dropped keyring is found again.

        Raises:
            ConfigurationError: an unusable tenant id, or the supplier returned no master key.
        """
        # Runs once per value: a str id is looked up as is (only valid ids are ever held).
        kind = type(tenant)
        key: str = (
            tenant  # type: ignore[assignment]  # kind is str
            if kind is str
            else str(tenant)
            if kind in _DECIMAL_OR_UUID
            else tenant_ids.canonical_tenant(tenant)
        )
        # A hit takes no lock: each OrderedDict operation is atomic, and a keyring dropped by
        # another thread between the two is still a valid keyring (its next use remakes it).
        held = self._keyrings.get(key)
        if held is not None:
            try:
                self._keyrings.move_to_end(key)
            except KeyError:
                return held  # dropped meanwhile by another thread: still a valid keyring
            return held
        return self._make(tenant_ids.canonical_tenant(key))

    def _make(self, tenant: str) -> Held:
        with self._lock:
            building = self._building.setdefault(tenant, threading.Lock())
        # One thread per tenant calls the supplier (it may call KMS or a database); the others
        # wait for its keyring rather than making their own.
        with building:
            with self._lock:
                held = self._keyrings.get(tenant)
                if held is not None:
                    return held
            try:
                held = (self._new_keyring(tenant), {})
            finally:
                with self._lock:
                    self._building.pop(tenant, None)
            with self._lock:
                self._keyrings[tenant] = held
                while len(self._keyrings) > self.max_tenants:
                    self._keyrings.popitem(last=False)
            return held

    def _new_keyring(self, tenant: str) -> Keyring:
        supplied = self._master_key_for(tenant)
        keys = (supplied,) if isinstance(supplied, MasterKey) else tuple(supplied or ())
        if not keys or not all(isinstance(k, MasterKey) for k in keys):
            raise ConfigurationError(
                f"master_key_for({tenant!r}) of keyring {self.name!r} must return a MasterKey "
                "(or a sequence of them, the one wrapping new keys first)"
            )
        options = dict(self._options)
        options["also_decrypt_with"] = (*keys[1:], *options.get("also_decrypt_with", ()))
        if self._anchor_id_for is not None:
            options["anchor_id"] = self._anchor_id_for(tenant)
        return Keyring(tenant_ids.keyring_name(self.name, tenant), keys[0], self.key_store, **options)

    def forget(self, tenant: TenantId) -> None:
        """Drop the held keyring of ``tenant``: its next use asks the supplier again (after the
        application changed that tenant's master key)."""
        with self._lock:
            self._keyrings.pop(tenant_ids.canonical_tenant(tenant), None)

    def held_tenants(self) -> list[str]:
        """Tenants whose keyrings are held now, least recently used first."""
        with self._lock:
            return list(self._keyrings)

    def stored_tenants(self) -> list[str]:
        """Tenants that have records in the key store, sorted (for operations and the CLI).

        Raises:
            ConfigurationError: the key store cannot list its keyrings.
        """
        names = getattr(self.key_store, "keyring_names", None)
        if names is None:
            raise ConfigurationError(
                f"key store {self.key_store!r} cannot list its keyrings (no keyring_names method)"
            )
        prefix = self.name + tenant_ids.SEPARATOR
        found: list[str] = names(prefix)
        # A tenant keyring's subject keys are filed under "<its name>#subjects" (fieldcrypt.subjects).
        return sorted(
            name[len(prefix) :]
            for name in found
            if name.startswith(prefix) and not name.endswith(SUBJECTS_SUFFIX)
        )

    def __repr__(self) -> str:
        return (
            f"TenantKeyrings({self.name!r}, key_store={self.key_store!r}, "
            f"held={len(self._keyrings)}/{self.max_tenants})"
        )
