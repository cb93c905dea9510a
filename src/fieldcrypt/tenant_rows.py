"""Which rows (items) one tenant's operation covers: the tenant column and the tenant's id.

Shared by the SQL batch engine (``fieldcrypt.rotation``) and the DynamoDB jobs
(``fieldcrypt.dynamodb``), so ``status``, ``reencrypt`` and ``verify`` with ``--tenant`` read
exactly the rows whose values are under that tenant's keyring, and never another tenant's.
"""

from __future__ import annotations

from dataclasses import dataclass

from fieldcrypt.errors import ConfigurationError


@dataclass(frozen=True)
class TenantRows:
    """The rows whose ``column`` (a SQL column or DynamoDB attribute) holds ``tenant``.

    ``tenant`` is the canonical tenant id (``TenantKeyrings.keyring_for(t).tenant``).

    Raises:
        ConfigurationError: an empty column name or tenant id.
    """

    column: str
    tenant: str

    def __post_init__(self) -> None:
        if not self.column or not isinstance(self.column, str):
            raise ConfigurationError("a tenant's rows are chosen by the column holding the tenant id")
        if not self.tenant or not isinstance(self.tenant, str):
            raise ConfigurationError("give the tenant id (--tenant ID)")

    @property
    def slug(self) -> str:
        """A file-name-safe form, for checkpoints of one tenant's job."""
        return "tenant-" + self.tenant.encode("utf-8").hex()

    def __str__(self) -> str:
        return f"{self.column}={self.tenant}"
