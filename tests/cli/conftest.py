"""Fixtures for the CLI tests: a runner with the environment of a configured operator shell."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import fieldcrypt
from fieldcrypt import config as cli_config
from fieldcrypt.stores.sql import SqlKeyStore

# The users-table helpers are shared with tests/rotation (this directory may run on its own), and
# the import test fills its table with bench/bench_import.py's own steps.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rotation"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory with no fieldcrypt settings inherited."""
    monkeypatch.chdir(tmp_path)
    for variable in (*cli_config.ENV.values(), "FIELDCRYPT_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    cli_config._engines.clear()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A local master key file."""
    path = tmp_path / "master.key"
    fieldcrypt.LocalMasterKey.write_new(path)
    return path


@pytest.fixture
def keyring(engine: Any, key_file: Path) -> fieldcrypt.Keyring:
    """Keyring "pii" as the CLI builds it: the key file's master key, fieldcrypt_keys in the test database."""
    store = SqlKeyStore(engine)
    store.create_table()
    return fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store)


@pytest.fixture
def run(engine: Any, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``run("status", "users.ssn", json_output=True)``: the CLI against the test database and key."""
    from cli_helpers import invoke

    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", f"file:{key_file}")
    return invoke


@pytest.fixture
def dynamo(aws_client: Callable[..., Any], moto_endpoint: str, key_file: Path) -> Iterator[dict[str, Any]]:
    """A patients table (3 items under an old data key, 2 under the current one) and a DynamoDB
    key store on moto; the CLI is pointed at both by flags only."""
    from cli_helpers import dynamodb_table

    made = dynamodb_table(
        aws_client("dynamodb"), moto_endpoint, key_file, [f"123-45-000{i}" for i in range(5)], rotate_before=3
    )
    first = made.ddb.get_item(TableName=made.table, Key={"patient_id": {"S": "p0"}})["Item"]
    yield {
        "target": f"dynamodb:{made.table}.ssn",
        "flags": made.flags,
        "env": {"FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}"},
        "keyring": made.keyring,
        "old": made.keyring.key_id_of(bytes(first["ssn"]["B"])),
        "current": made.keyring.current_key_id(),
        "ddb": made.ddb,
        "table": made.table,
    }
    made.drop()
