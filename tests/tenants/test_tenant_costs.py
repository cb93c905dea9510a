"""What a tenant costs (docs/tenants.md, "What it costs"): KMS calls and key-store rows per
tenant, counted on moto's KMS for the BYOK tenant."""

from __future__ import annotations

from typing import Any

from tenant_helpers import BYOK
from tenant_models import Member

import fieldcrypt


def test_a_tenants_first_write_and_cold_read_cost_a_handful_of_kms_calls(
    members: type[Member],
    tenant_keyrings: fieldcrypt.TenantKeyrings,
    key_store: fieldcrypt.MemoryKeyStore,
    master_keys: dict[str, Any],
    kms_clients: dict[str, Any],
    request_log: Any,
) -> None:
    """globex's first 50 searchable writes cost 3 KMS Encrypts and 3 key-store rows; a new process reading them costs 1 KMS Decrypt per data key."""
    request_log.attach(kms_clients[BYOK])
    for i in range(50):
        members(f"g-{i}", tenant_id=BYOK, ssn=f"000-00-{i:04d}").save()
    writes = request_log.operations()
    rows = key_store.list(tenant_keyrings.keyring_for(BYOK).name)
    request_log.calls.clear()
    fresh = fieldcrypt.TenantKeyrings(
        "tenant-pii", key_store=key_store, master_key_for=master_keys.__getitem__
    )
    fieldcrypt.register(fresh, replace=True)
    assert len({m.ssn for m in members.scan()}) == 50
    cold_read = request_log.operations()
    request_log.calls.clear()
    assert len(list(members.lookup("ssn", "000-00-0007", tenant=BYOK))) == 1
    search = request_log.operations()
    assert (writes, len(rows), cold_read, search) == (["Encrypt"] * 3, 3, ["Decrypt"], ["Decrypt", "Decrypt"])
