"""One CLI for SQL and DynamoDB: the key-store setting, one status schema and exit code, global
options after the command, one-line outages with exit 3, retiring unused keys. Through click's
runner and as the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cli_helpers import invoke, payload
from click.testing import Result
from rotation_helpers import create_users, encrypted_rows, raw

import fieldcrypt

SCRIPT = str(Path(sys.executable).parent / "fieldcrypt")


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as an operator runs it."""
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )


# --- DynamoDB targets with a DynamoDB key store ------------------------------------------------


def _ddb_run(dynamo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    for name, value in dynamo["env"].items():
        monkeypatch.setenv(name, value)
    return invoke(*args, *dynamo["flags"])


def test_dynamodb_status_exits_1_while_work_remains_in_the_sql_schema(
    dynamo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, sqlite_engine: sa.Engine, key_file: Path
) -> None:
    """DynamoDB status with a DynamoDB key store: exit 1 with old keys left, the SQL status's JSON fields and human lines."""
    status = _ddb_run(dynamo, monkeypatch, "status", dynamo["target"], "--json")
    assert status.exit_code == 1, status.stderr
    data = payload(status)
    assert (data["not_on_current_key"], data["by_data_key"]) == (3, {dynamo["old"]: 3, dynamo["current"]: 2})
    assert data["current_data_key"] == dynamo["current"]

    store = fieldcrypt.SqlKeyStore(sqlite_engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store)
    create_users(sqlite_engine, sa.LargeBinary, encrypted_rows(keyring, 3))
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    sql = invoke("status", "users.ssn", "--json")
    assert sql.exit_code == 0, sql.stderr
    assert sorted(payload(sql)) == sorted(data)  # one schema
    sql = invoke("status", "users.ssn")

    human = _ddb_run(dynamo, monkeypatch, "status", dynamo["target"])
    first = human.stderr.splitlines()
    assert f"{dynamo['target']}: 5 rows, 5 encrypted, 0 plaintext, 0 NULL; current data key" in human.stderr
    assert "3 values on older keys" in human.stderr
    assert any(
        line.startswith("users.ssn: 3 rows, 3 encrypted, 0 plaintext, 0 NULL")
        for line in sql.stderr.splitlines()
    )
    assert "{" not in "".join(first)  # no raw Python dict


def test_dynamodb_reencrypt_honours_workers_then_status_is_clean(
    dynamo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--workers 2 on a dynamodb: target runs two scan segments (two checkpoints); status then exits 0."""
    checkpoints = tmp_path / "ckpt"
    moved = _ddb_run(
        dynamo,
        monkeypatch,
        "reencrypt",
        dynamo["target"],
        "--workers",
        "2",
        "--checkpoint-dir",
        str(checkpoints),
        "--json",
    )
    assert moved.exit_code == 0, moved.stderr
    assert (payload(moved)["reencrypted"], payload(moved)["current"]) == (3, 2)
    stem = f"dynamodb-{dynamo['table']}.ssn"
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"{stem}.0-of-2.json", f"{stem}.1-of-2.json"]
    raw_items = dynamo["ddb"].scan(TableName=dynamo["table"])["Items"]
    assert {dynamo["keyring"].key_id_of(bytes(i["ssn"]["B"])) for i in raw_items} == {dynamo["current"]}

    status = _ddb_run(dynamo, monkeypatch, "status", dynamo["target"], "--workers", "3", "--json")
    assert (status.exit_code, payload(status)["rows"], payload(status)["not_on_current_key"]) == (0, 5, 0)
    assert payload(status)["unused_data_keys"] == [dynamo["old"]]


def test_dynamodb_status_through_the_console_script(dynamo: dict[str, Any]) -> None:
    """The installed script: dynamodb status exits 1 with work left, options after the command."""
    done = script("status", dynamo["target"], "--json", *dynamo["flags"], env=dynamo["env"])
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["not_on_current_key"] == 3


def test_missing_dynamodb_key_store_table_is_one_line_exit_3(
    dynamo: dict[str, Any], moto_endpoint: str
) -> None:
    """A key-store table that does not exist: one line naming it, exit 3."""
    flags = ["--key-store", "dynamodb:no_such_keys", "--endpoint-url", moto_endpoint, "--region", "us-east-1"]
    done = script("status", dynamo["target"], *flags, env=dynamo["env"])
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        "error: key-store table 'no_such_keys' does not exist in us-east-1: create it with "
        "DynamoDBKeyStore(...).create_table() (or replicate it to this region)"
    ]


# --- global options, help, outages --------------------------------------------------------------


def test_global_options_work_after_the_subcommand(
    run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """`keys list --json` and `--json keys list` print the same; --keyring after the command is honoured."""
    keyring.current_key_id()
    before = run("keys", "list", json_output=True)
    after = run("keys", "list", "--json")
    assert (before.exit_code, after.exit_code) == (0, 0)
    assert payload(after) == payload(before)
    other = run("keys", "list", "--keyring", "other", "--json")
    assert payload(other) == {"keyring": "other", "anchor": None, "keys": [], "damaged": []}


def test_help_says_what_a_target_looks_like() -> None:
    """--help of the group and of status name both target forms and the key-store setting."""
    top = invoke("--help")
    assert "TABLE.COLUMN" in top.stdout
    assert "dynamodb:TABLE.ATTRIBUTE" in top.stdout
    assert "--key-store" in top.stdout
    assert "--endpoint-url" in top.stdout
    assert "Global options may also follow the command" in top.stdout
    status = invoke("status", "--help")
    assert "dynamodb:TABLE.ATTRIBUTE" in status.stdout


def test_database_down_is_one_line_exit_3(key_file: Path) -> None:
    """A database that refuses connections: one line, exit 3 (runner and console script)."""
    env = {
        "FIELDCRYPT_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/nothing",
        "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
    }
    done = script("status", "users.ssn", env=env)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: database error (OperationalError): ")
    assert "check --database-url and that the server is up" in lines[0]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        result = invoke("keys", "list", "--json")
    assert result.exit_code == 3
    assert payload(result)["exit_code"] == 3


def test_missing_sql_key_store_table_is_one_line_exit_3(tmp_path: Path, key_file: Path) -> None:
    """A database without the key-store table: one line that says how to create it, exit 3."""
    env = {
        "FIELDCRYPT_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
    }
    done = script("keys", "list", env=env)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: key-store table 'fieldcrypt_keys' does not exist in sqlite:")
    assert "fieldcrypt init" in lines[0]


def test_bad_key_store_setting_is_refused(run: Callable[..., Result]) -> None:
    """A key-store setting of no known form: a clear message, exit 3."""
    result = run("keys", "list", "--key-store", "redis:keys")
    assert result.exit_code == 3
    assert "key store 'redis:keys' is not understood: use dynamodb:TABLE, sql:TABLE" in result.stderr


# --- keys with no value left --------------------------------------------------------------------


def test_status_names_unused_keys_and_retire_unused_retires_them(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """A data key no value uses is listed by status; `keys retire --unused users.ssn` retires it, not the others."""
    first = keyring.current_key_id()
    create_users(engine, sa.LargeBinary, encrypted_rows(keyring, 4))
    empty = keyring.rotate().key_id
    current = keyring.rotate().key_id
    status = run("status", "users.ssn", json_output=True)
    assert payload(status)["unused_data_keys"] == [empty]
    assert "data keys with no value here: " + empty in run("status", "users.ssn").stderr

    refused = run("keys", "retire", "--unused")
    assert refused.exit_code == 2
    assert "every column that uses the keyring" in refused.stderr
    retired = run("keys", "retire", "--unused", "users.ssn", "--json")
    assert retired.exit_code == 0, retired.stderr
    assert [r["key_id"] for r in payload(retired)["retired"]] == [empty]
    statuses = {r.key_id: r.status for r in keyring.key_store.list("pii")}
    assert (statuses[first], statuses[empty], statuses[current]) == (
        fieldcrypt.Status.ACTIVE,
        fieldcrypt.Status.RETIRED,
        fieldcrypt.Status.ACTIVE,
    )
    assert len(raw(engine)) == 4
