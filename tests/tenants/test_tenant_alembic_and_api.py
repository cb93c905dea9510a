"""The per-tenant operations through the Python API and Alembic (issue 14): op.rewrap_keys(tenant=)
rewraps one tenant's keys only; the batch engine's status and verify read one tenant's rows, and a
tenant whose KMS key is disabled fails alone."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from botocore.exceptions import ClientError
from tenant_helpers import BYOK, TENANTS, wraps_by_keyring
from tenant_models import sql_members

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import rotation
from fieldcrypt.column import ColumnSpec
from fieldcrypt.errors import DecryptionError, KeyAccessError
from fieldcrypt.rotation import TenantRows

table = sql_members("api_members")


def _spec(keyrings: fieldcrypt.TenantKeyrings, tenant: str) -> ColumnSpec:
    return ColumnSpec("api_members", "ssn", keyring=keyrings.keyring_for(tenant), codec="text")


@pytest.fixture
def rows(sqlite_engine: sa.Engine, tenant_keyrings: fieldcrypt.TenantKeyrings) -> sa.Engine:
    """Two rows per tenant, each encrypted under its tenant's keyring (globex on its own KMS key)."""
    table.create(sqlite_engine)
    values = [
        {"id": n * 10 + i, "tenant_id": t, "ssn": _spec(tenant_keyrings, t).encrypt(f"{t}-{i}")}
        for n, t in enumerate(TENANTS)
        for i in range(2)
    ]
    with sqlite_engine.begin() as conn:
        conn.execute(table.insert(), values)
    return sqlite_engine


def test_rewrap_keys_op_with_a_tenant_rewraps_only_that_tenants_records(
    rows: sa.Engine, tenant_keyrings: fieldcrypt.TenantKeyrings, kms_keys: dict[str, str], kms_clients: Any
) -> None:
    """op.rewrap_keys("tenant-pii", <globex's new key>, tenant="globex", remove_old=True) leaves acme's and initech's records as they were."""
    keyrings = {t: tenant_keyrings.keyring_for(t) for t in TENANTS}
    before = wraps_by_keyring(tenant_keyrings.key_store, keyrings)
    new_key = fieldcrypt.KmsMasterKey(kms_keys["globex-next"], client=kms_clients["globex-next"])
    with rows.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            Operations(context).rewrap_keys("tenant-pii", new_key, tenant=BYOK, remove_old=True)
    after = wraps_by_keyring(tenant_keyrings.key_store, keyrings)
    assert {k: w for k, (_, w) in after[BYOK].items()} == {k: [kms_keys["globex-next"]] for k in before[BYOK]}
    assert (after["acme"], after["initech"]) == (before["acme"], before["initech"])


def test_status_and_verify_of_one_tenant_read_only_its_rows(
    rows: sa.Engine, tenant_keyrings: fieldcrypt.TenantKeyrings
) -> None:
    """rotation.status/verify with TenantRows count 2 rows of initech, all decrypting under initech's keyring."""
    only = TenantRows("tenant_id", "initech")
    found = rotation.status(rows, _spec(tenant_keyrings, "initech"), tenant=only)
    assert (found.rows, found.encrypted, found.unknown_key) == (2, 2, 0)
    checked = rotation.verify(rows, _spec(tenant_keyrings, "initech"), tenant=only)
    assert (checked.decrypted, checked.failed) == (2, 0)
    everyone = rotation.verify(rows, _spec(tenant_keyrings, "initech"))  # no filter: 4 rows are others'
    assert (everyone.decrypted, everyone.failed) == (2, 4)


def test_a_disabled_tenant_key_fails_that_tenants_reads_only(
    rows: sa.Engine,
    key_store: fieldcrypt.MemoryKeyStore,
    master_keys: dict[str, Any],
    kms_clients: dict[str, Any],
) -> None:
    """globex's KMS key disabled: verify of globex raises KeyAccessError naming globex; acme and initech verify clean."""
    fresh = fieldcrypt.TenantKeyrings(
        "tenant-pii", key_store=key_store, master_key_for=master_keys.__getitem__
    )

    def disabled(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "DisabledException", "Message": "key is disabled"}}, "Decrypt")

    kms_clients[BYOK].meta.events.register("before-call.kms.Decrypt", disabled)
    try:
        with pytest.raises(KeyAccessError, match=BYOK) as caught:
            rotation.verify(rows, _spec(fresh, BYOK), tenant=TenantRows("tenant_id", BYOK))
        assert not isinstance(caught.value, DecryptionError)
        for tenant in ("acme", "initech"):
            checked = rotation.verify(rows, _spec(fresh, tenant), tenant=TenantRows("tenant_id", tenant))
            assert (checked.decrypted, checked.failed) == (2, 0)
    finally:
        kms_clients[BYOK].meta.events.unregister("before-call.kms.Decrypt", disabled)
