"""Adoption edge cases through the CLI: a bad row does not stop encrypt-column, plaintext shaped
like a ciphertext is not taken for done, and status lists the rows still (or again) in clear."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result
from rotation_helpers import create_users, raw, ssn

import fieldcrypt
from fieldcrypt import format as fmt


@pytest.fixture
def engine(sqlite_engine: sa.Engine) -> sa.Engine:
    """SQLite: these rules are the engine's, the same on every database."""
    return sqlite_engine


def test_one_bad_row_is_listed_and_the_run_goes_on(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """A Numeric value that is not a number is listed; the other rows are encrypted; exit code 1."""
    create_users(engine, sa.Numeric(10, 2), [(1, "12.50"), (2, "7")])
    with engine.begin() as conn:  # SQLite keeps text a NUMERIC column cannot convert
        conn.execute(sa.text("insert into users (id, email, ssn) values (3, 'x', 'not a number')"))
        conn.execute(sa.text("insert into users (id, email, ssn) values (4, 'y', '3')"))
    result = run("encrypt-column", "users.ssn", "--codec", "decimal", json_output=True)
    assert result.exit_code == 1
    report = payload(result)
    assert (report["written"], report["failed"]) == (3, 1)
    assert [f["row"] for f in report["failures"]] == ["3"]
    stored = raw(engine)
    assert stored[3] == "not a number"
    for i in (1, 2, 4):
        assert fmt.looks_like_ciphertext(stored[i])
    assert keyring.decrypt(stored[4], fieldcrypt.Place("users", "ssn")) == b"3"


def test_plaintext_shaped_like_a_ciphertext_is_reported_not_trusted(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """Binary plaintext starting with 0x01: encrypt-column lists it (exit 1), status names its row, verify fails it."""
    lookalike = b"\x01" + os.urandom(60)
    create_users(engine, sa.LargeBinary, [(1, lookalike), (2, b"ordinary bytes")])
    result = run("encrypt-column", "users.ssn", "--codec", "bytes", json_output=True)
    assert result.exit_code == 1
    report = payload(result)
    assert (report["written"], report["failed"]) == (1, 1)
    assert report["failures"][0]["row"] == "1"
    assert "names no data key of this keyring" in report["failures"][0]["error"]
    assert raw(engine)[1] == lookalike  # left as it is, never encrypted twice

    status = run("status", "users.ssn", json_output=True)
    assert status.exit_code == 1
    assert (payload(status)["unknown_key_rows"], payload(status)["plaintext_rows"]) == (["1"], [])
    verified = run("verify", "users.ssn", "--codec", "bytes", json_output=True)
    assert verified.exit_code == 1
    assert [f["row"] for f in payload(verified)["failures"]] == ["1"]


def test_status_lists_rows_that_went_back_to_plaintext(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """After encrypt-column, a row written back in clear (the transitional window) is named by status."""
    create_users(engine, sa.String(11), [(i, ssn(i)) for i in range(1, 6)])
    assert run("encrypt-column", "users.ssn").exit_code == 0
    clean = run("status", "users.ssn", json_output=True)
    assert (clean.exit_code, payload(clean)["plaintext_rows"]) == (0, [])
    with engine.begin() as conn:
        conn.execute(sa.text("update users set ssn = :v where id = 4"), {"v": ssn(4).encode()})
    status = run("status", "users.ssn", json_output=True)
    assert (status.exit_code, payload(status)["plaintext"], payload(status)["plaintext_rows"]) == (
        1,
        1,
        ["4"],
    )
    human = run("status", "users.ssn")
    assert "rows plaintext (never encrypted, or written back in clear): 4" in human.stdout + human.stderr
    assert ssn(4) not in human.stdout + human.stderr
