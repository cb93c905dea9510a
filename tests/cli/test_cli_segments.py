"""Segments on an existing scheduler: N concurrent `fieldcrypt reencrypt --segment auto` processes,
given the variables a Kubernetes Indexed Job or an AWS Batch array job sets, process every row of
a PostgreSQL table or a DynamoDB table (moto) exactly once. The shipped job manifests parse into
the commands and variables those processes use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
import yaml
from cli_helpers import dynamodb_table
from rotation_helpers import create_users, encrypted_rows, raw, ssn

import fieldcrypt
from fieldcrypt.cli import cli

SCRIPT = str(Path(sys.executable).parent / "fieldcrypt")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
JOBS = 3
CONVENTIONS = {
    "kubernetes": lambda i, n: {"JOB_COMPLETION_INDEX": str(i), "FIELDCRYPT_SEGMENT_COUNT": str(n)},
    "aws-batch": lambda i, n: {"AWS_BATCH_JOB_ARRAY_INDEX": str(i), "AWS_BATCH_JOB_ARRAY_SIZE": str(n)},
}


def run_jobs(convention: str, args: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    """Start JOBS processes at once, as the scheduler would, and return each one's JSON report."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_COMPLETION", "AWS_BATCH"))}
    processes = [
        subprocess.Popen(
            [SCRIPT, *args, "--segment", "auto", "--json", "-q"],
            env={**base, **env, **CONVENTIONS[convention](i, JOBS)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(JOBS)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        reports.append(json.loads(out))
    assert sorted(r["segment"] for r in reports) == [f"{i}/{JOBS}" for i in range(JOBS)]
    return reports


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_concurrent_segment_jobs_on_postgresql_process_every_row_once(
    convention: str, pg_engine: sa.Engine, key_file: Path
) -> None:
    """N processes with a scheduler's variables: each row scanned and rewritten by exactly one, all on the new key."""
    store = fieldcrypt.SqlKeyStore(pg_engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store)
    rows = 300
    create_users(pg_engine, sa.LargeBinary, encrypted_rows(keyring, rows))
    new = keyring.rotate().key_id
    env = {
        "FIELDCRYPT_DATABASE_URL": pg_engine.url.render_as_string(hide_password=False),
        "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
    }
    reports = run_jobs(convention, ["reencrypt", "users.ssn", "--batch-size", "40", "--workers", "2"], env)
    assert sum(r["scanned"] for r in reports) == rows  # no row read by two jobs, none missed
    assert sum(r["written"] for r in reports) == rows  # each row rewritten once
    assert all(r["total"] == r["scanned"] for r in reports)
    stored = raw(pg_engine)
    place = fieldcrypt.Place("users", "ssn")
    assert {keyring.key_id_of(v) for v in stored.values()} == {new}
    assert all(keyring.decrypt(v, place) == ssn(i).encode() for i, v in stored.items())


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_concurrent_segment_jobs_on_dynamodb_process_every_item_once(
    convention: str, aws_client: Callable[..., Any], moto_endpoint: str, key_file: Path
) -> None:
    """N processes on a DynamoDB table and key store (moto): each item scanned and moved by exactly one."""
    items = 120
    made = dynamodb_table(aws_client("dynamodb"), moto_endpoint, key_file, [ssn(i) for i in range(items)])
    ddb, table, keyring, column, flags = made.ddb, made.table, made.keyring, made.column, made.flags
    new = keyring.rotate().key_id
    env = {"FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}"}
    reports = run_jobs(convention, ["reencrypt", f"dynamodb:{table}.ssn", "--batch-size", "25", *flags], env)
    assert sum(r["scanned"] for r in reports) == items
    assert sum(r["reencrypted"] for r in reports) == items
    stored = ddb.scan(TableName=table)["Items"]
    assert len(stored) == items
    assert {keyring.key_id_of(bytes(i["ssn"]["B"])) for i in stored} == {new}
    assert all(
        keyring.decrypt(bytes(i["ssn"]["B"]), column.place(i)) == ssn(int(i["patient_id"]["S"][1:])).encode()
        for i in stored
    )
    made.drop()


def _parses(args: list[str]) -> None:
    """``args`` (a subcommand and its options) is a command line the fieldcrypt CLI accepts."""
    command = cli.commands[args[0]]
    command.make_context(args[0], list(args[1:]), parent=click.Context(cli, info_name="fieldcrypt"))


def test_kubernetes_indexed_job_manifest_runs_segment_auto() -> None:
    """examples/kubernetes/reencrypt-job.yaml: an Indexed Job whose FIELDCRYPT_SEGMENT_COUNT is its completions."""
    job = yaml.safe_load((EXAMPLES / "kubernetes" / "reencrypt-job.yaml").read_text())
    spec = job["spec"]
    assert (job["kind"], spec["completionMode"]) == ("Job", "Indexed")
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FIELDCRYPT_SEGMENT_COUNT"] == str(spec["completions"])
    args = container["args"]
    assert args[0] == "fieldcrypt"
    assert args[args.index("--segment") + 1] == "auto"
    _parses(args[1:])


def test_aws_batch_array_job_runs_segment_auto() -> None:
    """examples/aws-batch/: the array size is passed as AWS_BATCH_JOB_ARRAY_SIZE; the command parses."""
    definition = json.loads((EXAMPLES / "aws-batch" / "job-definition.json").read_text())
    submission = json.loads((EXAMPLES / "aws-batch" / "submit-array.json").read_text())
    assert submission["jobDefinition"] == definition["jobDefinitionName"]
    overrides = {e["name"]: e["value"] for e in submission["containerOverrides"]["environment"]}
    assert overrides["AWS_BATCH_JOB_ARRAY_SIZE"] == str(submission["arrayProperties"]["size"])
    parameters = definition["parameters"] | submission["parameters"]
    command = [
        parameters.get(a.removeprefix("Ref::"), a) if a.startswith("Ref::") else a
        for a in definition["containerProperties"]["command"]
    ]
    assert command[0] == "fieldcrypt"
    assert command[command.index("--segment") + 1] == "auto"
    _parses(command[1:])
    script = (EXAMPLES / "aws-batch" / "submit.sh").read_text()
    assert "file://job-definition.json" in script
    assert "file://submit-array.json" in script
