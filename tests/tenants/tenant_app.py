"""The application side of the per-tenant tests: a supplier the CLI loads with
``--tenant-keyrings tenant_app:tenant_keyrings``, as docs/tenants.md tells applications to write one.

Which master key each tenant has is read from ``$FC_TENANT_DIR/tenants.json`` (tenant id ->
``file:PATH`` or a KMS key ARN), the key store is ``$FC_TENANT_KEY_STORE`` (a database URL), so
the test and a real ``fieldcrypt`` subprocess share one configuration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import fieldcrypt
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.keys.resolve import master_key_from
from fieldcrypt.stores.sql import SqlKeyStore

NAME = "tenant-pii"


def master_key_for(tenant: str) -> MasterKey:
    """The tenant's master key: its own KMS key (BYOK) or the shared one, as tenants.json says."""
    mapping = json.loads((Path(os.environ["FC_TENANT_DIR"]) / "tenants.json").read_text())
    return master_key_from(mapping.get(tenant, mapping["*"]))


def tenant_keyrings() -> fieldcrypt.TenantKeyrings:
    """The application's TenantKeyrings (the CLI registers what this returns)."""
    import sqlalchemy as sa

    store = SqlKeyStore(sa.create_engine(os.environ["FC_TENANT_KEY_STORE"]))
    return fieldcrypt.TenantKeyrings(NAME, key_store=store, master_key_for=master_key_for)
