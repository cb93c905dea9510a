"""`fieldcrypt rebind TARGET --from OLD_TABLE.OLD_NAME` after a rename: SQL columns (the engine
under op.rebind_column) and DynamoDB attributes or tables copied under a new name."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cli_helpers import invoke, payload
from click.testing import Result
from rotation_helpers import create_users, raw, ssn

import fieldcrypt
from fieldcrypt import format as fmt


def _ddb_run(dynamo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    for name, value in dynamo["env"].items():
        monkeypatch.setenv(name, value)
    return invoke(*args, *dynamo["flags"])


def _items(dynamo: dict[str, Any], table: str) -> dict[str, dict[str, Any]]:
    return {
        i["patient_id"]["S"]: i for i in dynamo["ddb"].scan(TableName=table, ConsistentRead=True)["Items"]
    }


def _opens_at(dynamo: dict[str, Any], table: str, attribute: str) -> dict[str, str]:
    """Each item's ``attribute`` decrypted at its own place (raises if bound elsewhere); ciphertext checked."""
    found = {}
    for key, item in _items(dynamo, table).items():
        blob = bytes(item[attribute]["B"])
        assert fmt.looks_like_ciphertext(blob)
        assert b"123-45" not in blob
        place = fieldcrypt.Place(table, attribute, key)
        found[key] = dynamo["keyring"].decrypt(blob, place).decode()
    return found


EXPECTED = {f"p{i}": f"123-45-000{i}" for i in range(5)}


def test_dynamodb_rebind_of_a_table_copied_under_a_new_name(
    dynamo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """rebind dynamodb:NEW.ssn --from OLD.ssn re-binds every copied item, with checkpoints apart from reencrypt's; a re-run finds all current."""
    ddb, old = dynamo["ddb"], dynamo["table"]
    new = f"{old}_v2"
    ddb.create_table(
        TableName=new,
        KeySchema=[{"AttributeName": "patient_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "patient_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        for item in _items(dynamo, old).values():
            ddb.put_item(TableName=new, Item=item)
        with pytest.raises(fieldcrypt.DecryptionError):  # copied values are bound to the old table
            _opens_at(dynamo, new, "ssn")
        checkpoints = tmp_path / "ckpt"
        args = ["rebind", f"dynamodb:{new}.ssn", "--from", f"{old}.ssn", "--checkpoint-dir", str(checkpoints)]
        moved = _ddb_run(dynamo, monkeypatch, *args, "--workers", "2", "--json")
        assert moved.exit_code == 0, moved.stderr
        assert payload(moved)["action"] == "rebind"
        assert (payload(moved)["rebound"], payload(moved)["current"], payload(moved)["from"]) == (
            5,
            0,
            f"{old}.ssn",
        )
        assert all(p.name.startswith(f"dynamodb-rebind-{new}.ssn.") for p in checkpoints.iterdir())
        assert _opens_at(dynamo, new, "ssn") == EXPECTED
        again = _ddb_run(dynamo, monkeypatch, *args[:4])
        assert again.exit_code == 0, again.stderr
        assert "re-bound 0, already current 5" in again.stderr
    finally:
        ddb.delete_table(TableName=new)


def test_dynamodb_rebind_of_a_renamed_attribute(
    dynamo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rebind dynamodb:T.tax_id --from T.ssn moves every value to tax_id, bound there, and removes ssn."""
    table = dynamo["table"]
    dry = _ddb_run(
        dynamo, monkeypatch, "rebind", f"dynamodb:{table}.tax_id", "--from", f"{table}.ssn", "--dry-run"
    )
    assert dry.exit_code == 0, dry.stderr
    assert "would re-bind 5" in dry.stderr
    assert all("tax_id" not in i for i in _items(dynamo, table).values())
    moved = _ddb_run(
        dynamo, monkeypatch, "rebind", f"dynamodb:{table}.tax_id", "--from", f"{table}.ssn", "--json"
    )
    assert moved.exit_code == 0, moved.stderr
    assert payload(moved)["rebound"] == 5
    assert all("ssn" not in i for i in _items(dynamo, table).values())
    assert _opens_at(dynamo, table, "tax_id") == EXPECTED


def test_dynamodb_rebind_needs_from(dynamo: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A dynamodb: rebind without --from is a one-line configuration error (exit 3)."""
    result = _ddb_run(dynamo, monkeypatch, "rebind", dynamo["target"])
    assert result.exit_code == 3
    assert "--from OLD_TABLE.OLD_ATTRIBUTE" in result.stderr


def test_sql_rebind_after_a_table_rename(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, run: Callable[..., Result]
) -> None:
    """rebind users.ssn --from people.ssn (the engine under op.rebind_column) re-binds every row; a re-run writes nothing."""
    old = fieldcrypt.Place("people", "ssn")
    create_users(engine, sa.LargeBinary, [(i, keyring.encrypt(ssn(i), old)) for i in range(1, 31)])
    moved = run(
        "rebind",
        "users.ssn",
        "--from",
        "people.ssn",
        "--codec",
        "text",
        "--batch-size",
        "7",
        json_output=True,
    )
    assert moved.exit_code == 0, moved.stderr
    assert (payload(moved)["action"], payload(moved)["written"]) == ("rebind", 30)
    new = fieldcrypt.Place("users", "ssn")
    for i, blob in raw(engine).items():
        assert fmt.looks_like_ciphertext(blob)
        assert ssn(i).encode() not in blob
        assert keyring.decrypt(blob, new) == ssn(i).encode()
    again = run("rebind", "users.ssn", "--from", "people.ssn", "--codec", "text", json_output=True)
    assert (again.exit_code, payload(again)["written"]) == (0, 0)
    missing = run("rebind", "users.ssn", "--codec", "text")
    assert missing.exit_code == 3
    assert "--from OLD_TABLE.OLD_COLUMN" in missing.stderr


MODELS = """
import sqlalchemy as sa
from fieldcrypt.sqlalchemy import Encrypted

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ssn", Encrypted(sa.String(11), keyring="pii", bound_as=("people", "ssn"))),
)
"""


def test_sql_rebind_takes_the_old_place_from_the_models(
    engine: sa.Engine,
    keyring: fieldcrypt.Keyring,
    run: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With --metadata, rebind reads bound_as from the model (no --from); a contradicting --from is refused."""
    (tmp_path / "fc_rebind_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fc_rebind_models", raising=False)
    fieldcrypt.register(keyring)
    old = fieldcrypt.Place("people", "ssn")
    create_users(engine, sa.LargeBinary, [(i, keyring.encrypt(ssn(i), old)) for i in range(1, 11)])
    models = ("--metadata", "fc_rebind_models:metadata")
    refused = run(*models, "rebind", "users.ssn", "--from", "patients.ssn")
    assert refused.exit_code == 3
    assert "contradicts the model's bound_as" in refused.stderr
    moved = run(*models, "rebind", "users.ssn", json_output=True)
    assert (moved.exit_code, payload(moved)["written"]) == (0, 10)
    new = fieldcrypt.Place("users", "ssn")
    assert {i: keyring.decrypt(blob, new).decode() for i, blob in raw(engine).items()} == {
        i: ssn(i) for i in range(1, 11)
    }
    sys.modules.pop("fc_rebind_models", None)
