"""docs/rotation.md runs: its CLI runbooks in a shell, its Alembic env.py and revision under Alembic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from docs_blocks import ROOT, blocks, find

import fieldcrypt

GUIDE = ROOT / "docs" / "rotation.md"
FIELDCRYPT = Path(sys.executable).with_name("fieldcrypt")
# Console blocks this test does not run, and why (each must still be found in the guide).
NOT_RUN = {
    "keys rewrap --to arn:aws:kms:": "Runbook 3 needs two KMS keys and an application deploy",
    "keys shred <key id>": "Runbook 6 needs two KMS keys: tests/rotation/test_rotation_shred.py runs it against moto",
    "keys rekey-subjects": "waits refresh_every and needs two master keys: tests/test_subjects.py runs the "
    "sequence (test_shred_reaches_a_backup_only_after_the_rekey_and_the_master_key_move)",
}
SSNS = {1: "123-45-6789", 2: "987-65-4321", 3: None}


def _commands(code: str) -> list[str]:
    """The ``$ fieldcrypt ...`` lines of a console block (other lines are prose for a human)."""
    return [line[2:] for line in code.splitlines() if line.startswith("$ fieldcrypt ")]


def _shell(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{FIELDCRYPT.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _key_ids(cwd: Path) -> list[dict[str, Any]]:
    listed = _shell("fieldcrypt --json keys list", cwd)
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout)["keys"])


def test_cli_runbooks_run_as_written(tmp_path: Path) -> None:
    """Every console block of the guide (but Runbook 3) runs, in order, and each command exits 0."""
    assert FIELDCRYPT.exists(), f"the fieldcrypt script is not installed next to {sys.executable}"
    consoles = [b for b in blocks(GUIDE) if b.kind == "console"]
    skipped = [b for b in consoles if any(marker in b.code for marker in NOT_RUN)]
    assert len(skipped) == len(NOT_RUN), "a block the test skips is gone from the guide: update NOT_RUN"
    ran = []
    for block in consoles:
        if block in skipped:
            continue
        for line in _commands(block.code):
            if "<old key id>" in line or "<key id>" in line:
                first = _key_ids(tmp_path)[0]["key_id"]  # the data key `init` made, replaced by Runbook 2
                line = line.replace("<old key id>", first).replace("<key id>", first)
            done = _shell(line, tmp_path)
            assert done.returncode == 0, f"{block.where}: `{line}` exited {done.returncode}:\n{done.stderr}"
            ran.append(line.split("#")[0].strip())
            if line.startswith("fieldcrypt init"):
                _legacy_users_table(tmp_path / "fieldcrypt.db")
    assert any(r.startswith("fieldcrypt reindex users.ssn") for r in ran)
    # Where the runbooks leave the table: every value encrypted under the current key and indexed,
    # the first data key destroyed (Runbook 5) with nothing left under it.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'fieldcrypt.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, ssn, ssn_bidx FROM users ORDER BY id")).all()
    engine.dispose()
    for row_id, ssn, token in rows:
        if SSNS[row_id] is None:
            assert ssn is None
            assert token is None
        else:
            assert isinstance(ssn, bytes)
            assert ssn[:1] == b"\x01"
            assert SSNS[row_id].encode() not in ssn
            assert isinstance(token, bytes)
            assert len(token) == 16
    statuses = {k["key_id"]: k["status"] for k in _key_ids(tmp_path)}
    assert "destroyed" in statuses.values()
    verified = _shell("fieldcrypt verify users.ssn --codec text", tmp_path)
    assert verified.returncode == 0, verified.stderr


def _legacy_users_table(database: Path) -> None:
    """What the runbooks start from: a plaintext ``users.ssn``, and (Runbook 1, step 0) its index column."""
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, ssn VARCHAR(11), ssn_bidx BLOB)"))
        conn.execute(sa.text("CREATE INDEX ix_users_ssn_bidx ON users (ssn_bidx)"))
        for row_id, ssn in SSNS.items():
            conn.execute(sa.text("INSERT INTO users (id, ssn) VALUES (:i, :s)"), {"i": row_id, "s": ssn})
    engine.dispose()


FIRST_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("ssn", sa.String(11)))
    op.create_key_store()
    op.bulk_insert(sa.table("users", sa.column("id"), sa.column("ssn")),
                   [{"id": 1, "ssn": "123-45-6789"}, {"id": 2, "ssn": "987-65-4321"}, {"id": 3, "ssn": None}])


def downgrade() -> None:
    op.drop_key_store()
    op.drop_table("users")
"""


def test_alembic_environment_and_revision_run_under_alembic(
    pg_engine: sa.Engine, kms_key: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's env.py and Runbook 1 revision encrypt and index users.ssn on PostgreSQL, and downgrade."""
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    shutil.copy(ROOT / "migrations" / "script.py.mako", scripts)
    (scripts / "env.py").write_text(find(GUIDE, "context.configure(").code)
    (scripts / "versions" / "0001_users.py").write_text(FIRST_REVISION)
    (scripts / "versions" / "0002_adopt.py").write_text(find(GUIDE, "op.encrypt_column(").code)
    monkeypatch.setenv("DATABASE_URL", pg_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("KMS_KEY_ARN", kms_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    config = Config()
    config.set_main_option("script_location", str(scripts))

    command.upgrade(config, "head")
    with pg_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, ssn, ssn_bidx FROM users ORDER BY id")).all()
    assert [r.id for r in rows] == [1, 2, 3]
    assert all(bytes(r.ssn)[:1] == b"\x01" and b"45" not in bytes(r.ssn) for r in rows[:2])
    assert rows[2].ssn is None
    # The encrypt pass writes no token (step 4's reindex does): the column exists, empty.
    assert all(r.ssn_bidx is None for r in rows)

    fieldcrypt.registry.unregister("pii")  # env.py registers it again on every run
    command.downgrade(config, "0001")
    with pg_engine.connect() as conn:
        after = conn.execute(sa.text("SELECT id, ssn FROM users ORDER BY id")).all()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("users")}
    assert [tuple(r) for r in after] == [(1, "123-45-6789"), (2, "987-65-4321"), (3, None)]
    assert columns == {"id", "ssn"}
