"""Which key opens and seals one row's value, for the batch engine, ``status`` and ``verify``.

A column's values are under its keyring's data keys; for a per-tenant column (``Encrypted(...,
tenant=...)``) under the keyring of the row's tenant; for a per-subject column (``subject=...``)
under the row's subject's own key inside that keyring. The engine reads the tenant and subject
columns beside each value (:class:`~fieldcrypt.rotation.table.Target`) and hands them here as
:class:`Chosen`; the sealing rules themselves are the core ``ColumnSpec``'s (``seal_bytes``,
``open_bytes``), the ones ``ColumnSpec.encrypt``/``decrypt`` use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from fieldcrypt import ratelimit
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.record import Purpose
from fieldcrypt.place import Place
from fieldcrypt.rotation.spec import ColumnSpec
from fieldcrypt.tenant_rows import TenantRows

HELD_TENANTS = 256  # rate-limited tenant keyrings one run keeps (the supplier holds its own LRU)


def one_tenant(spec: ColumnSpec, keyring: Keyring) -> tuple[ColumnSpec, TenantRows]:
    """``spec`` narrowed to the rows of ``keyring``'s tenant, under that keyring alone.

    Raises:
        ConfigurationError: ``spec`` has no tenant column, or ``keyring`` is no tenant's.
    """
    where = f"{spec.table}.{spec.column}"
    if spec.tenant_column is None:
        raise ConfigurationError(f"{where} has no tenant column: a tenant's rows cannot be told apart")
    if keyring.tenant is None:
        raise ConfigurationError(f"{where}: keyring {keyring.name!r} is not a TenantKeyrings' keyring")
    # The spec now holds the one tenant's keyring: it no longer chooses a keyring per row.
    return replace(spec, keyring=keyring, tenant_column=None), TenantRows(spec.tenant_column, keyring.tenant)


class Chosen(NamedTuple):
    """A row's values of the columns choosing its key (None: the column has no such option)."""

    tenant: Any = None
    subject: Any = None


NO_CHOICE = Chosen()


class RowKeys:
    """The keyring and key of each row's value of ``spec``'s column; ``max_kms_calls_per_second``
    caps every keyring of the run together (one bucket, whatever the number of tenants)."""

    def __init__(self, spec: ColumnSpec, max_kms_calls_per_second: float | None = None) -> None:
        self.spec = spec
        self.per_tenant = spec.tenant_column is not None
        self.per_subject = spec.subject_column is not None
        self._bucket = (
            None if max_kms_calls_per_second is None else ratelimit.TokenBucket(max_kms_calls_per_second)
        )
        self._fixed = None if self.per_tenant else ratelimit.limited(spec.resolve_keyring(), self._bucket)
        self._tenants: OrderedDict[str, Keyring] = OrderedDict()
        self._shared: dict[str, set[str]] = {}  # keyring name -> its data keys' ids

    @property
    def columns(self) -> tuple[str | None, str | None]:
        """The tenant and subject columns to read beside each value (None: not per tenant/subject)."""
        return self.spec.tenant_column, self.spec.subject_column

    def keyring(self, chosen: Chosen = NO_CHOICE) -> Keyring:
        """The column's keyring, or the keyring of the row's tenant.

        Raises:
            ConfigurationError: a per-tenant row without its tenant.
        """
        if self._fixed is not None:
            return self._fixed
        found = self.spec.resolve_keyring(chosen.tenant)
        held = self._tenants.get(found.name)
        if held is None:
            held = self._tenants[found.name] = ratelimit.limited(found, self._bucket)
            if len(self._tenants) > HELD_TENANTS:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(found.name)
        return held

    def seal(self, data: bytes, place: Place, chosen: Chosen = NO_CHOICE) -> bytes:
        """``data`` encrypted for the row: its keyring's current key, or its subject's own key.

        Raises:
            KeyDestroyedError: the row's subject was shredded.
        """
        return self.spec.seal_bytes(self.keyring(chosen), data, place, chosen.subject)

    def open(self, blob: bytes, places: Sequence[Place], chosen: Chosen = NO_CHOICE) -> bytes:
        """Decrypt the row's value at the first of ``places`` it opens at, as the application does.

        Raises:
            DecryptionError: not a value of this row (moved, tampered); KeyDestroyedError: its
                data key was destroyed or its subject shredded.
        """
        return self.spec.open_bytes(self.keyring(chosen), blob, places, chosen.subject)

    def is_shared(self, blob: bytes, chosen: Chosen = NO_CHOICE) -> bool:
        """Whether ``blob`` names one of the row's keyring's data keys, shared by every value it
        writes (in a per-subject column: a value written before the column was per subject),
        as the key store listed them when first asked (:meth:`forget_shared` to look again)."""
        keyring = self.keyring(chosen)
        known = self._shared.get(keyring.name)
        if known is None:
            known = self._shared[keyring.name] = {r.key_id for r in keyring.records(Purpose.ENCRYPTION)}
        return keyring.key_id_of(blob) in known

    def forget_shared(self) -> None:
        """Read the keyrings' data keys again at the next :meth:`is_shared` (one may be new)."""
        self._shared.clear()
