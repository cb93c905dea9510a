"""Setting up a key store from the CLI: `init --master-key ARN` makes a KMS-backed one, and
`encrypt-column` proves it can encrypt before it widens anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cli_helpers import invoke, payload
from rotation_helpers import create_users, raw, ssn

import fieldcrypt
from fieldcrypt.keys.kms import KmsMasterKey
from fieldcrypt.stores.sql import SqlKeyStore

SSNS = {i: ssn(i) for i in range(1, 6)}
MISSING_ARN = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"


def test_init_with_a_kms_arn_makes_a_kms_backed_key_store(
    tmp_path: Path, moto_endpoint: str, aws_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """init --master-key ARN: no local key file; the first data key is wrapped by that KMS key only."""
    arn = aws_client("kms").create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", moto_endpoint)
    done = invoke("--master-key", arn, "init", json_output=True)
    assert done.exit_code == 0, done.stderr
    out = payload(done)
    assert (out["key_file"], out["master_key_id"]) == (None, arn)
    assert not (tmp_path / ".fieldcrypt").exists()
    assert f'master_key = "{arn}"' in (tmp_path / "fieldcrypt.toml").read_text()
    store = SqlKeyStore(sa.create_engine(f"sqlite:///{tmp_path / 'fieldcrypt.db'}"))
    (record,) = store.list("pii", fieldcrypt.Purpose.ENCRYPTION)
    assert (record.key_id, set(record.wraps)) == (out["data_key_id"], {arn})
    # The key KMS wrapped is the one the keyring uses: a KMS-backed reader opens it.
    reader = fieldcrypt.Keyring("pii", KmsMasterKey(arn, client=aws_client("kms")), store)
    assert reader.current_key_id() == out["data_key_id"]
    listed = invoke("keys", "list", json_output=True)  # configured by fieldcrypt.toml alone
    assert [k["wrapped_under"] for k in payload(listed)["keys"]] == [[arn]]


@pytest.mark.parametrize(
    ("fault", "exit_code", "message"),
    [
        ("no key-store table", 3, "key-store table 'fieldcrypt_keys' does not exist"),
        ("master key refused", 4, f"with {MISSING_ARN} failed (NotFoundException)"),
    ],
)
def test_a_failing_encrypt_column_leaves_the_column_type_unchanged(
    mariadb_engine: sa.Engine,
    moto_endpoint: str,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    exit_code: int,
    message: str,
) -> None:
    """MariaDB: encrypt-column that cannot encrypt fails before the ALTER: VARCHAR(11), plaintext intact."""
    create_users(mariadb_engine, sa.String(11), SSNS.items())
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", mariadb_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", moto_endpoint)
    if fault == "no key-store table":
        monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", f"file:{key_file}")
    else:
        SqlKeyStore(mariadb_engine).create_table()
        monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", MISSING_ARN)
    failed = invoke("encrypt-column", "users.ssn")
    assert failed.exit_code == exit_code, failed.stderr
    assert message in failed.stderr
    column = next(c for c in sa.inspect(mariadb_engine).get_columns("users") if c["name"] == "ssn")
    assert isinstance(column["type"], sa.String)
    assert (type(column["type"]).__name__, column["type"].length) == ("VARCHAR", 11)
    assert raw(mariadb_engine) == SSNS
