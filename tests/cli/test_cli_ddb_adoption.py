"""`fieldcrypt encrypt-column dynamodb:TABLE.ATTRIBUTE`: plaintext items adopted in place (moto),
through click's runner and as the console script, killed with SIGKILL mid-table and resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import DynamoTable, dynamodb_table, invoke, kill_9_mid_run, payload

from fieldcrypt import format as fmt
from fieldcrypt.dynamodb.tables import EncryptedColumn

SCRIPT = str(Path(sys.executable).parent / "fieldcrypt")


def ssn(i: int) -> str:
    return f"{i:03d}-{i % 97:02d}-{i:04d}"


@pytest.fixture
def plaintext_table(
    aws_client: Callable[..., Any], moto_endpoint: str, key_file: Path
) -> Iterator[Callable[[int], dict[str, Any]]]:
    """``make(n)``: a table of n items whose ssn an application wrote in clear, and a DynamoDB key
    store, with the CLI's flags and environment for both."""
    ddb = aws_client("dynamodb")
    made: list[DynamoTable] = []

    def make(n: int) -> dict[str, Any]:
        table = dynamodb_table(ddb, moto_endpoint, key_file, [])
        made.append(table)
        items = [
            {"PutRequest": {"Item": {"patient_id": {"S": f"p{i}"}, "ssn": {"S": ssn(i)}}}} for i in range(n)
        ]
        for start in range(0, n, 25):
            ddb.batch_write_item(RequestItems={table.table: items[start : start + 25]})
        return {
            "ddb": ddb,
            "table": table.table,
            "keyring": table.keyring,
            "flags": table.flags,
            "env": {"FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}"},
            "target": f"dynamodb:{table.table}.ssn",
            "items": n,
        }

    yield make
    for table in made:
        table.drop()


def encrypted(setup: dict[str, Any]) -> dict[str, bytes]:
    """The items whose ssn is already a ciphertext, by patient id (a raw, consistent scan)."""
    ddb, found, start = setup["ddb"], {}, None
    while True:
        page = ddb.scan(
            TableName=setup["table"], ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {})
        )
        for item in page["Items"]:
            if "B" in item["ssn"]:
                found[item["patient_id"]["S"]] = bytes(item["ssn"]["B"])
        start = page.get("LastEvaluatedKey")
        if not start:
            return found


def assert_every_item_encrypted_once(setup: dict[str, Any]) -> None:
    """Every ssn is a ciphertext bound to its item that decrypts to the original plaintext (not to
    another ciphertext: encrypted once)."""
    stored = encrypted(setup)
    assert len(stored) == setup["items"]
    column = EncryptedColumn.open(setup["ddb"], setup["table"], "ssn")
    for patient_id, blob in stored.items():
        assert fmt.looks_like_ciphertext(blob)
        place = column.place({"patient_id": {"S": patient_id}})
        assert setup["keyring"].decrypt(blob, place) == ssn(int(patient_id[1:])).encode()


def test_encrypt_column_on_a_dynamodb_target_then_status_is_clean(
    plaintext_table: Callable[[int], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status lists the plaintext items (exit 1), encrypt-column adopts them, status then exits 0."""
    setup = plaintext_table(12)
    for name, value in setup["env"].items():
        monkeypatch.setenv(name, value)
    before = invoke("status", setup["target"], *setup["flags"], json_output=True)
    assert before.exit_code == 1
    assert payload(before)["plaintext"] == 12
    done = invoke("encrypt-column", setup["target"], "--workers", "2", "--batch-size", "5", *setup["flags"])
    assert done.exit_code == 0, done.stderr
    assert (
        f"encrypt {setup['target']} (segment 0/1): scanned 12, encrypted 12, already encrypted 0"
        in done.stderr
    )
    assert_every_item_encrypted_once(setup)
    after = invoke("status", setup["target"], *setup["flags"], json_output=True)
    assert (after.exit_code, payload(after)["plaintext"], payload(after)["rows"]) == (0, 0, 12)
    again = invoke("encrypt-column", setup["target"], *setup["flags"], json_output=True)
    assert (payload(again)["encrypted"], payload(again)["already_encrypted"]) == (0, 12)


def test_status_names_an_item_written_back_in_clear_after_adoption(
    plaintext_table: Callable[[int], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plaintext written over an adopted item (the transitional window) is listed by key by status, and re-adopted."""
    setup = plaintext_table(4)
    for name, value in setup["env"].items():
        monkeypatch.setenv(name, value)
    assert invoke("encrypt-column", setup["target"], *setup["flags"]).exit_code == 0
    setup["ddb"].put_item(TableName=setup["table"], Item={"patient_id": {"S": "p2"}, "ssn": {"S": ssn(2)}})
    status = invoke("status", setup["target"], *setup["flags"], json_output=True)
    assert status.exit_code == 1
    assert (payload(status)["plaintext"], payload(status)["plaintext_rows"]) == (1, ["'p2'"])
    again = invoke("encrypt-column", setup["target"], *setup["flags"], json_output=True)
    assert (payload(again)["encrypted"], payload(again)["already_encrypted"]) == (1, 3)
    assert_every_item_encrypted_once(setup)


def test_items_left_undone_are_listed_and_exit_1(
    plaintext_table: Callable[[int], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value of another type is listed by key (never its value), the rest adopted, and the run exits 1."""
    setup = plaintext_table(3)
    setup["ddb"].put_item(
        TableName=setup["table"], Item={"patient_id": {"S": "bad"}, "ssn": {"N": "987654321"}}
    )
    for name, value in setup["env"].items():
        monkeypatch.setenv(name, value)
    done = invoke("encrypt-column", setup["target"], *setup["flags"], json_output=True)
    assert done.exit_code == 1
    report = payload(done)
    assert (report["encrypted"], report["failed"]) == (3, 1)
    assert [f["row"] for f in report["failures"]] == ["'bad'"]
    assert "987654321" not in done.stdout + done.stderr
    human = invoke("encrypt-column", setup["target"], *setup["flags"])
    assert human.exit_code == 1
    assert "  item 'bad': " in human.stderr


def test_dynamodb_options_are_refused_on_sql_targets_and_sql_options_on_dynamodb() -> None:
    """--kind is for dynamodb: targets and --from for SQL ones; each is refused on the other, exit 3."""
    sql = invoke("encrypt-column", "users.ssn", "--kind", "S")
    assert sql.exit_code == 3
    assert "--kind and --index-attribute are for dynamodb:TABLE.ATTRIBUTE targets" in sql.stderr
    ddb = invoke("encrypt-column", "dynamodb:patients.ssn", "--codec", "text")
    assert ddb.exit_code == 3
    assert "dynamodb: targets take --kind and --index-attribute" in ddb.stderr


def test_console_script_adopts_a_dynamodb_attribute(plaintext_table: Callable[[int], dict[str, Any]]) -> None:
    """The installed script, as an operator runs it: exit 0, a JSON report, every item a ciphertext."""
    setup = plaintext_table(20)
    done = subprocess.run(
        [SCRIPT, "encrypt-column", setup["target"], "--json", "--segment", "0/1", *setup["flags"]],
        capture_output=True,
        text=True,
        env={**os.environ, **setup["env"]},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["encrypted"], report["failed"], report["failures"]) == (20, 0, [])
    assert_every_item_encrypted_once(setup)


def test_kill_9_mid_adoption_then_resume_encrypts_every_item_once(
    plaintext_table: Callable[[int], dict[str, Any]], tmp_path: Path
) -> None:
    """SIGKILL mid-table: its log has progress lines, the items done stay done; the rerun resumes (its progress from the resumed position) and encrypts exactly the rest."""
    setup = plaintext_table(1500)
    checkpoints, log = tmp_path / "checkpoints", tmp_path / "killed.log"
    env = {**os.environ, **setup["env"], "FIELDCRYPT_PROGRESS_INTERVAL": "0"}
    arguments = ["encrypt-column", setup["target"], "--batch-size", "20", "--workers", "2", *setup["flags"]]
    kill_9_mid_run(arguments, env, checkpoints, stderr_log=log)
    done = len(encrypted(setup))
    assert 0 < done < setup["items"]  # stopped mid-table
    progress = [line for line in log.read_text().splitlines() if " rows/s" in line]
    assert progress  # without a terminal, a killed run's log still says how far it got
    assert all(line.startswith(f"encrypt {setup['target']} (segment 0/1): ") for line in progress)
    rerun = subprocess.run(
        [SCRIPT, *arguments, "--checkpoint-dir", str(checkpoints), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["segments_resumed"] >= 1
    # Only the items still in plaintext were encrypted by the rerun; the killed run's items
    # (even those of its last, unsaved page) were skipped as already encrypted.
    assert report["encrypted"] == setup["items"] - done
    # Its progress lines start where the checkpoints say, so its rate counts only its own items.
    resumed = [line for line in rerun.stderr.splitlines() if " rows/s" in line]
    start = f"resumed at {setup['items'] - report['scanned']}"
    assert resumed
    assert all(line.removesuffix(" (done)").endswith(start) for line in resumed)
    assert_every_item_encrypted_once(setup)
