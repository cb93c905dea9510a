"""`fieldcrypt reencrypt` killed with SIGKILL mid-table, then rerun with its checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_helpers import invoke, kill_9_mid_run, payload
from rotation_helpers import create_users, raw, ssn

import fieldcrypt

ROWS = 6000


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"], indirect=True)
def test_kill_9_of_the_cli_then_resume_from_checkpoint(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, key_file: Path, tmp_path: Path
) -> None:
    """SIGKILL the console script mid-table (its log already says how far it got); the rerun resumes
    after the last commit, its progress starting at the resumed position, and finishes."""
    place = fieldcrypt.Place("users", "ssn")
    create_users(engine, sa.LargeBinary, [(i, keyring.encrypt(ssn(i), place)) for i in range(1, ROWS + 1)])
    old = keyring.current_key_id()
    new = keyring.rotate().key_id
    url = engine.url.render_as_string(hide_password=False)
    env = {
        **os.environ,
        "FIELDCRYPT_DATABASE_URL": url,
        "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
        "FIELDCRYPT_PROGRESS_INTERVAL": "0",
    }
    checkpoints = tmp_path / "checkpoints"
    log = tmp_path / "stderr.log"
    kill_9_mid_run(["reencrypt", "users.ssn", "--batch-size", "10"], env, checkpoints, stderr_log=log)
    killed_log = log.read_text().splitlines()
    assert killed_log
    assert killed_log[-1].startswith("reencrypt users.ssn (segment 0/1): ")
    assert f"/{ROWS} rows (" in killed_log[-1]
    assert {keyring.key_id_of(b) for b in raw(engine).values()} == {old, new}  # stopped mid-table

    env_vars = {
        "FIELDCRYPT_DATABASE_URL": url,
        "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
        "FIELDCRYPT_PROGRESS_INTERVAL": "0",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env_vars.items():
            patch.setenv(name, value)
        rerun = invoke(
            "reencrypt",
            "users.ssn",
            "--batch-size",
            "500",
            "--checkpoint-dir",
            str(checkpoints),
            json_output=True,
        )
    assert rerun.exit_code == 0, rerun.stderr
    resumed_after = payload(rerun)["resumed_after"]
    assert resumed_after is not None
    assert 0 < resumed_after[0] < ROWS
    resumed_rows = payload(rerun)["resumed_rows"]
    assert resumed_rows == resumed_after[0]  # ids 1..N, all in the one segment
    first = rerun.stderr.splitlines()[0]
    assert first.startswith(f"reencrypt users.ssn (segment 0/1): {min(resumed_rows + 500, ROWS)}/{ROWS} rows")
    assert first.endswith(f"resumed at {resumed_rows}")
    stored = raw(engine)
    assert len(stored) == ROWS
    assert {keyring.key_id_of(b) for b in stored.values()} == {new}
    assert all(keyring.decrypt(b, place) == ssn(i).encode() for i, b in stored.items())
