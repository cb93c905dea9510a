"""Helpers for the CLI tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import Result

import fieldcrypt
from cli_runner import cli_runner
from fieldcrypt.cli import cli
from fieldcrypt.dynamodb.tables import EncryptedColumn
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore


def invoke(*args: str, json_output: bool = False, input: bytes | str | None = None) -> Result:
    """Run the CLI in-process; stdout and stderr are kept apart."""
    arguments = (["--json"] if json_output else []) + list(args)
    return cli_runner().invoke(cli, arguments, input=input, catch_exceptions=False)


def payload(result: Result) -> Any:
    return json.loads(result.stdout)


def kill_9_mid_run(
    arguments: list[str], env: dict[str, str], checkpoints: Path, *, stderr_log: Path | None = None
) -> None:
    """Run the ``fieldcrypt`` console script and SIGKILL it once a checkpoint exists and some
    more batches have committed (a crash between commits, as an operator's job would meet it).
    With ``stderr_log`` its stderr (progress lines included) is kept there; else it runs -q."""
    command = [
        str(Path(sys.executable).parent / "fieldcrypt"),
        *([] if stderr_log else ["-q"]),
        *arguments,
        "--checkpoint-dir",
        str(checkpoints),
    ]
    log = stderr_log.open("w") if stderr_log else None
    process = subprocess.Popen(command, env=env, stderr=log)
    deadline = time.monotonic() + 120
    while not any(checkpoints.glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    time.sleep(0.1)  # some more batches
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    if log is not None:
        log.close()


@dataclass
class DynamoTable:
    """A patients table on moto whose items hold encrypted SSNs, and its DynamoDB key store."""

    ddb: Any
    table: str
    store_table: str
    keyring: fieldcrypt.Keyring
    column: EncryptedColumn
    flags: list[str]  # what points the CLI at the key store and moto

    def drop(self) -> None:
        self.ddb.delete_table(TableName=self.table)
        self.ddb.delete_table(TableName=self.store_table)


def dynamodb_table(
    ddb: Any, moto_endpoint: str, key_file: Path, ssns: Sequence[str], rotate_before: int | None = None
) -> DynamoTable:
    """Items ``p0, p1, ...`` holding ``ssns`` encrypted (the data key rotated before item
    ``rotate_before``), under a key store table; both tables named at random."""
    table, store_table = f"patients_{uuid.uuid4().hex[:8]}", f"keys_{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "patient_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "patient_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = DynamoDBKeyStore(store_table, client=ddb)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store)
    column = EncryptedColumn.open(ddb, table, "ssn")
    for i, value in enumerate(ssns):
        if i == rotate_before:
            keyring.rotate()
        item: dict[str, Any] = {"patient_id": {"S": f"p{i}"}}
        item["ssn"] = {"B": keyring.encrypt(value, column.place(item))}
        ddb.put_item(TableName=table, Item=item)
    flags = [
        "--key-store",
        f"dynamodb:{store_table}",
        "--endpoint-url",
        moto_endpoint,
        "--region",
        "us-east-1",
    ]
    return DynamoTable(ddb, table, store_table, keyring, column, flags)
