"""The CLI on a real column (SQLite, PostgreSQL, MariaDB): encrypt-column, status, keys rotate,
reencrypt, verify, decrypt-column; raw table checked after each; no plaintext ever printed."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result
from rotation_helpers import create_users, raw, ssn

import fieldcrypt
from fieldcrypt import format as fmt

SSNS = {i: ssn(i) for i in range(1, 31)}


def _no_plaintext(*results: Result) -> None:
    for result in results:
        for value in SSNS.values():
            assert value not in result.stdout
            assert value not in result.stderr


def test_column_lifecycle_through_the_cli(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """encrypt-column -> status -> rotate -> reencrypt --workers 2 -> verify -> decrypt-column, raw checked."""
    create_users(engine, sa.String(11), SSNS.items())
    place = fieldcrypt.Place("users", "ssn")

    dry = run("encrypt-column", "users.ssn", "--dry-run", json_output=True)
    assert (dry.exit_code, payload(dry)["to_change"], raw(engine)) == (0, 30, SSNS)

    encrypted = run("encrypt-column", "users.ssn", "--batch-size", "7", json_output=True)
    assert encrypted.exit_code == 0, encrypted.stderr
    assert payload(encrypted)["written"] == 30
    stored = raw(engine)
    assert all(
        fmt.looks_like_ciphertext(v) and keyring.decrypt(v, place) == SSNS[i].encode()
        for i, v in stored.items()
    )

    status = run("status", "users.ssn", json_output=True)
    first_key = keyring.key_id_of(stored[1])
    assert status.exit_code == 0
    assert payload(status)["by_data_key"] == {first_key: 30}
    assert payload(status)["by_master_key"] == {keyring.master_key.key_id: 30}

    rotated = run("keys", "rotate", json_output=True)
    new_key = payload(rotated)["key_id"]
    behind = run("status", "users.ssn", json_output=True)
    assert (behind.exit_code, payload(behind)["not_on_current_key"]) == (1, 30)

    moved = run("reencrypt", "users.ssn", "--workers", "2", "--batch-size", "4")
    assert moved.exit_code == 0, moved.stderr
    assert "reencrypt users.ssn (segment 0/1): scanned 30, wrote 30, failed 0" in moved.stderr
    assert {keyring.key_id_of(v) for v in raw(engine).values()} == {new_key}

    verified = run("verify", "users.ssn", "--codec", "text", json_output=True)
    assert (verified.exit_code, payload(verified)["decrypted"]) == (0, 30)

    back = run("decrypt-column", "users.ssn", "--codec", "text", "--restore-type", "VARCHAR(11)")
    assert back.exit_code == 0, back.stderr
    assert raw(engine) == SSNS
    _no_plaintext(dry, encrypted, status, behind, moved, verified, back)


def test_destroy_then_status_and_verify_report_shredded_rows(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """keys destroy needs --yes; afterwards status counts and verify lists the rows, both exit 1."""
    place = fieldcrypt.Place("users", "ssn")
    doomed = keyring.current_key_id()
    rows = [(i, keyring.encrypt(ssn(i), place)) for i in range(1, 4)]
    keyring.rotate()
    rows += [(i, keyring.encrypt(ssn(i), place)) for i in range(4, 6)]
    create_users(engine, sa.LargeBinary, rows)

    refused = run("keys", "destroy", doomed)
    assert refused.exit_code == 2
    assert "pass --yes to go ahead" in refused.stderr
    assert keyring.key_store.get(doomed).status is fieldcrypt.Status.ACTIVE  # type: ignore[union-attr]

    destroyed = run("keys", "destroy", doomed, "--yes", json_output=True)
    assert (destroyed.exit_code, payload(destroyed)["status"], payload(destroyed)["wrapped_under"]) == (
        0,
        "destroyed",
        [],
    )
    status = run("status", "users.ssn", json_output=True)
    assert (status.exit_code, payload(status)["undecryptable"]) == (
        1,
        {"destroyed_key": 3, "unknown_key": 0, "failed": 0},
    )
    verified = run("verify", "users.ssn", "--codec", "text")
    assert verified.exit_code == 1
    assert f"row 1: cannot decrypt users.ssn: data key {doomed} was destroyed" in verified.stderr

    listed = run("keys", "list", json_output=True)
    assert [
        (k["key_id"] == doomed, k["status"]) for k in payload(listed)["keys"] if k["purpose"] == "encryption"
    ] == [
        (True, "destroyed"),
        (False, "active"),
    ]
