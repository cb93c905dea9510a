"""``--tenant`` on the CLI for dynamodb: targets and the keys commands (issue 14): one tenant's
items and key-store records only, the supplier loaded from the application (--tenant-keyrings)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tenant_app
from tenant_helpers import BYOK, TENANTS, invoke, payload, wraps_by_keyring
from tenant_models import Member

import fieldcrypt
from ddb_shapes import on_moto

SUPPLIER = "tenant_app:tenant_keyrings"
TARGET = ("dynamodb:members.ssn", "--tenant-column", "tenant_id")


@pytest.fixture
def app(
    tenant_dir: Path,
    kms_keys: dict[str, str],
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    cli_env: None,
) -> Iterator[fieldcrypt.TenantKeyrings]:
    """The application: globex on its own KMS key, the others on a shared key file; 4 items per tenant."""
    mapping = json.loads((tenant_dir / "tenants.json").read_text()) | {BYOK: kms_keys["globex"]}
    (tenant_dir / "tenants.json").write_text(json.dumps(mapping))
    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", moto_endpoint)
    supplier = tenant_app.tenant_keyrings()
    supplier.key_store.create_table()
    fieldcrypt.register(supplier)
    with on_moto(moto_endpoint, Member):
        for tenant in TENANTS:
            for i in range(4):
                Member(f"{tenant}-{i}", tenant_id=tenant, ssn=f"000-00-000{i}").save()
        yield supplier


def _cli(*args: str, endpoint: str) -> Any:
    return invoke(
        *args,
        "--keyring",
        "tenant-pii",
        "--tenant-keyrings",
        SUPPLIER,
        "--region",
        "us-east-1",
        "--endpoint-url",
        endpoint,
    )


def test_status_and_verify_read_one_tenants_items(app: Any, moto_endpoint: str) -> None:
    """status and verify --tenant globex count globex's 4 items, all decrypting under its keyring, and no other tenant's."""
    result = _cli("status", *TARGET, "--tenant", BYOK, endpoint=moto_endpoint)
    assert result.exit_code == 0, result.stderr
    found = payload(result)
    assert (found["tenant"], found["rows"], found["encrypted"], found["undecryptable"]["failed"]) == (
        BYOK,
        4,
        4,
        0,
    )
    checked = _cli("verify", *TARGET, "--tenant", "acme", endpoint=moto_endpoint)
    assert checked.exit_code == 0, checked.stderr
    assert (payload(checked)["decrypted"], payload(checked)["failed"]) == (4, 0)


def test_reencrypt_one_tenant_writes_only_its_items(app: Any, moto_endpoint: str, ddb: Any) -> None:
    """After keys rotate --tenant globex, reencrypt --tenant globex rewrites globex's 4 items and leaves every other item's bytes as they were."""
    before = {i["member_id"]["S"]: bytes(i["ssn"]["B"]) for i in ddb.scan(TableName="members")["Items"]}
    rotated = _cli("keys", "rotate", "--tenant", BYOK, endpoint=moto_endpoint)
    assert rotated.exit_code == 0, rotated.stderr
    new_key = payload(rotated)["key_id"]
    result = _cli("reencrypt", *TARGET, "--tenant", BYOK, endpoint=moto_endpoint)
    assert result.exit_code == 0, result.stderr
    assert (payload(result)["tenant"], payload(result)["reencrypted"]) == (BYOK, 4)
    after = {i["member_id"]["S"]: bytes(i["ssn"]["B"]) for i in ddb.scan(TableName="members")["Items"]}
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == [f"{BYOK}-{i}" for i in range(4)]
    assert all(app.keyring_for(BYOK).key_id_of(after[k]) == new_key for k in changed)
    assert Member.get(f"{BYOK}-2").ssn == "000-00-0002"


def test_rewrap_one_tenant_to_its_new_kms_key_touches_only_its_records(
    app: Any, moto_endpoint: str, kms_keys: dict[str, str]
) -> None:
    """keys rewrap --tenant globex --to its new KMS key --remove-old: globex's records are wrapped only under the new key; acme's and initech's records are byte for byte unchanged."""
    keyrings = {t: app.keyring_for(t) for t in TENANTS}
    before = wraps_by_keyring(app.key_store, keyrings)
    assert all(before[t] for t in TENANTS)
    result = _cli(
        "keys",
        "rewrap",
        "--tenant",
        BYOK,
        "--to",
        kms_keys["globex-next"],
        "--remove-old",
        endpoint=moto_endpoint,
    )
    assert result.exit_code == 0, result.stderr
    after = wraps_by_keyring(app.key_store, keyrings)
    assert {k: w for k, (_, w) in after[BYOK].items()} == {k: [kms_keys["globex-next"]] for k in before[BYOK]}
    assert after["acme"] == before["acme"]
    assert after["initech"] == before["initech"]


def test_per_tenant_attribute_without_tenant_is_refused(app: Any, moto_endpoint: str) -> None:
    """status of a per-tenant attribute without --tenant exits 3 saying to pass it; keys tenants lists the three tenants."""
    result = _cli("status", *TARGET, endpoint=moto_endpoint)
    assert result.exit_code == 3
    assert "pass --tenant ID" in result.stderr
    listed = _cli("keys", "tenants", endpoint=moto_endpoint)
    assert listed.exit_code == 0, listed.stderr
    assert payload(listed)["tenants"] == sorted(TENANTS)
