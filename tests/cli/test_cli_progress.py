"""Progress outside a terminal: reencrypt, verify and status print periodic lines on stderr."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from click.testing import Result
from rotation_helpers import create_users, encrypted_rows

import fieldcrypt


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_reencrypt_verify_and_status_print_progress_lines_without_a_terminal(
    engine: sa.Engine,
    run: Callable[..., Result],
    keyring: fieldcrypt.Keyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With stderr not a terminal, each command prints rows done/total, rate and ETA lines, and a last line."""
    create_users(engine, sa.LargeBinary, encrypted_rows(keyring, 30))
    keyring.rotate()
    monkeypatch.setenv("FIELDCRYPT_PROGRESS_INTERVAL", "0")
    moved = run("reencrypt", "users.ssn", "--batch-size", "10", json_output=True)
    assert moved.exit_code == 0, moved.stderr
    lines = moved.stderr.splitlines()
    assert [line.split(" rows")[0] for line in lines] == [
        "reencrypt users.ssn (segment 0/1): 10/30",
        "reencrypt users.ssn (segment 0/1): 20/30",
        "reencrypt users.ssn (segment 0/1): 30/30",
        "reencrypt users.ssn (segment 0/1): 30/30",
    ]
    assert " (33.3%), " in lines[0]
    assert " rows/s, ETA " in lines[0]
    assert lines[-1].endswith("(done)")

    checked = run("verify", "users.ssn", "--codec", "text", "--batch-size", "25")
    assert checked.exit_code == 0, checked.stderr
    assert "verify users.ssn: 25/30 rows (83.3%)" in checked.stderr

    status = run("status", "users.ssn", "--workers", "2")
    assert status.exit_code == 0, status.stderr
    assert "status users.ssn (segment 0/1): 30/30 rows (100.0%)" in status.stderr


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_quiet_prints_no_progress(
    engine: sa.Engine,
    run: Callable[..., Result],
    keyring: fieldcrypt.Keyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """-q silences the progress lines."""
    create_users(engine, sa.LargeBinary, encrypted_rows(keyring, 3))
    monkeypatch.setenv("FIELDCRYPT_PROGRESS_INTERVAL", "0")
    result = run("reencrypt", "users.ssn", "-q", json_output=True)
    assert (result.exit_code, result.stderr) == (0, "")
