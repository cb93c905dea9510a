"""``--tenant`` on status, reencrypt, verify and keys rewrap for SQL targets (issue 14), on
SQLite, PostgreSQL and MariaDB: one tenant's rows and key-store records only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import tenant_app
from tenant_helpers import BYOK, TENANTS, invoke, payload, wraps_by_keyring
from tenant_models import sql_members

import fieldcrypt
from fieldcrypt.column import ColumnSpec
from fieldcrypt.format import VERSION_1
from fieldcrypt.keys.record import Purpose

ROWS_PER_TENANT = 3
members = sql_members("tenant_members")


def _ids(tenant: str) -> list[int]:
    base = TENANTS.index(tenant) * 100
    return [base + i for i in range(ROWS_PER_TENANT)]


@pytest.fixture
def app(engine: sa.Engine, tenant_dir: Path, monkeypatch: pytest.MonkeyPatch, cli_env: None) -> Iterator[Any]:
    """Three tenants' rows, each tenant's values encrypted under its keyring (globex: its own master key)."""
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("FC_TENANT_KEY_STORE", url)
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", url)
    supplier = tenant_app.tenant_keyrings()
    supplier.key_store.create_table()
    fieldcrypt.register(supplier)
    members.create(engine)
    rows = []
    for tenant in TENANTS:  # encrypted first: SQLite's one writer is the key store's meanwhile
        spec = ColumnSpec("tenant_members", "ssn", keyring=supplier.keyring_for(tenant), codec="text")
        rows += [{"id": i, "tenant_id": tenant, "ssn": spec.encrypt(f"ssn-{i}")} for i in _ids(tenant)]
    with engine.begin() as conn:
        conn.execute(members.insert(), rows)
    yield supplier
    members.drop(engine)


def _stored(engine: sa.Engine) -> dict[int, bytes]:
    with engine.connect() as conn:
        return {row.id: bytes(row.ssn) for row in conn.execute(sa.select(members.c.id, members.c.ssn))}


def _cli(*args: str) -> Any:
    return invoke(*args, "--keyring", "tenant-pii", "--tenant-keyrings", "tenant_app:tenant_keyrings")


COLUMN = ("tenant_members.ssn", "--codec", "text", "--tenant-column", "tenant_id")


def test_status_and_verify_count_one_tenants_rows(app: Any, engine: sa.Engine) -> None:
    """status and verify --tenant acme see acme's rows only, every one ciphertext under acme's keyring."""
    stored = _stored(engine)
    assert all(blob[0] == VERSION_1 and b"ssn-" not in blob for blob in stored.values())
    result = _cli("status", *COLUMN, "--tenant", "acme")
    assert result.exit_code == 0, result.stderr
    found = payload(result)
    assert (found["tenant"], found["rows"], found["encrypted"]) == ("acme", ROWS_PER_TENANT, ROWS_PER_TENANT)
    checked = _cli("verify", *COLUMN, "--tenant", BYOK)
    assert checked.exit_code == 0, checked.stderr
    assert (payload(checked)["decrypted"], payload(checked)["failed"]) == (ROWS_PER_TENANT, 0)


def test_reencrypt_one_tenant_rewrites_only_its_rows(app: Any, engine: sa.Engine) -> None:
    """keys rotate then reencrypt --tenant globex rewrite globex's rows onto its new key; every other row's bytes are unchanged."""
    before = _stored(engine)
    rotated = _cli("keys", "rotate", "--tenant", BYOK)
    assert rotated.exit_code == 0, rotated.stderr
    result = _cli("reencrypt", *COLUMN, "--tenant", BYOK)
    assert result.exit_code == 0, result.stderr
    assert (payload(result)["tenant"], payload(result)["written"]) == (BYOK, ROWS_PER_TENANT)
    after = _stored(engine)
    assert sorted(i for i in before if before[i] != after[i]) == _ids(BYOK)
    globex = app.keyring_for(BYOK)
    assert {globex.key_id_of(after[i]) for i in _ids(BYOK)} == {payload(rotated)["key_id"]}


def test_a_value_moved_to_another_tenants_row_fails_verify(app: Any, engine: sa.Engine) -> None:
    """globex's ciphertext copied into an acme row fails acme's verify (exit 1, that row listed); globex still verifies."""
    stored = _stored(engine)
    victim = _ids("acme")[0]
    with engine.begin() as conn:
        conn.execute(members.update().where(members.c.id == victim).values(ssn=stored[_ids(BYOK)[0]]))
    result = _cli("verify", *COLUMN, "--tenant", "acme")
    assert result.exit_code == 1
    assert (payload(result)["failed"], payload(result)["failures"][0]["row"]) == (1, repr(victim))
    assert _cli("verify", *COLUMN, "--tenant", BYOK).exit_code == 0


def test_per_tenant_column_without_tenant_is_refused(app: Any) -> None:
    """A column with a tenant column and no --tenant exits 3 naming --tenant; --tenant without a tenant column exits 3 too."""
    result = _cli("status", *COLUMN)
    assert result.exit_code == 3
    assert "pass --tenant ID" in result.stderr
    result = _cli("status", "tenant_members.ssn", "--codec", "text", "--tenant", "acme")
    assert result.exit_code == 3
    assert "--tenant-column NAME" in result.stderr


def test_rewrap_one_tenant_in_a_real_process(app: Any, engine: sa.Engine, tenant_dir: Path) -> None:
    """The fieldcrypt console script rewraps globex onto its new key: globex's records are under the new key only, the others' unchanged, and its rows still read."""
    keyrings = {t: app.keyring_for(t) for t in TENANTS}
    before = wraps_by_keyring(app.key_store, keyrings)
    new_key = fieldcrypt.LocalMasterKey.from_file(tenant_dir / "globex-next.key")
    here = Path(__file__).resolve().parent
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "fieldcrypt"),
            "--json",
            "keys",
            "rewrap",
            "--keyring",
            "tenant-pii",
            "--tenant",
            BYOK,
            "--tenant-keyrings",
            "tenant_app:tenant_keyrings",
            "--to",
            f"file:{tenant_dir / 'globex-next.key'}",
            "--remove-old",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data_keys = [r for r in keyrings[BYOK].records() if r.purpose is not Purpose.ANCHOR]
    assert json.loads(done.stdout)["rewrapped"] == len(data_keys)  # the anchor is rewrapped beside them
    after = wraps_by_keyring(app.key_store, keyrings)
    assert {w for _, (_, w) in after[BYOK].items() for w in w} == {new_key.key_id}
    assert (after["acme"], after["initech"]) == (before["acme"], before["initech"])
    mapping = json.loads((tenant_dir / "tenants.json").read_text()) | {
        BYOK: f"file:{tenant_dir / 'globex-next.key'}"
    }
    (tenant_dir / "tenants.json").write_text(json.dumps(mapping))  # the application now supplies the new key
    assert _cli("verify", *COLUMN, "--tenant", BYOK).exit_code == 0
