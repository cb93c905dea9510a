"""`keys rewrap` (local -> local and -> KMS) and blind-index rotation (`keys rotate --purpose
blind_index` + `reindex`) through the CLI, with the raw tables checked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result
from rotation_helpers import create_indexed_users, create_users, raw, ssn

import fieldcrypt
from fieldcrypt.stores.sql import SqlKeyStore


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"], indirect=True)
def test_rewrap_to_a_new_local_key_touches_no_row(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring, tmp_path: Path
) -> None:
    """keys rewrap --to file:NEW --remove-old: users untouched; only the new key can open the data keys."""
    store = keyring.key_store
    place = fieldcrypt.Place("users", "ssn")
    rows = [(i, keyring.encrypt(ssn(i), place)) for i in range(1, 6)]
    keyring.rotate()
    rows += [(i, keyring.encrypt(ssn(i), place)) for i in range(6, 9)]
    create_users(engine, sa.LargeBinary, rows)
    before = raw(engine)
    new_key = fieldcrypt.LocalMasterKey.write_new(tmp_path / "next.key")
    dry = run("keys", "rewrap", "--to", f"file:{tmp_path / 'next.key'}", "--dry-run", json_output=True)
    assert (payload(dry)["rewrapped"], [set(r.wraps) for r in store.list("pii")]) == (
        2,
        [{keyring.master_key.key_id}] * 3,  # the two data keys and the keyring's anchor
    )
    done = run("keys", "rewrap", "--to", f"file:{tmp_path / 'next.key'}", "--remove-old", json_output=True)
    assert done.exit_code == 0, done.stderr
    assert (payload(done)["rewrapped"], payload(done)["removed_copies"]) == (2, 2)
    assert raw(engine) == before
    assert all(set(r.wraps) == {new_key.key_id} for r in store.list("pii"))
    reader = fieldcrypt.Keyring("pii", new_key, store)
    assert all(reader.decrypt(v, place) == ssn(i).encode() for i, v in before.items())


def test_rewrap_local_to_kms_through_the_cli(
    sqlite_engine: sa.Engine,
    key_file: Path,
    moto_endpoint: str,
    aws_client: Callable[..., Any],
    monkeypatch: Any,
) -> None:
    """keys rewrap --to ARN moves a local keyring onto a KMS key (unwrap here, Encrypt in KMS)."""
    from cli_helpers import invoke

    from fieldcrypt.keys.kms import KmsMasterKey

    arn = aws_client("kms").create_key()["KeyMetadata"]["Arn"]
    url = sqlite_engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", url)
    monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", f"file:{key_file}")
    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", moto_endpoint)
    store = SqlKeyStore(sqlite_engine)
    store.create_table()
    local = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store)
    value = local.encrypt("123-45-6789", fieldcrypt.Place("users", "ssn"))
    done = invoke("keys", "rewrap", "--to", arn, "--remove-old", json_output=True)
    assert done.exit_code == 0, done.stderr
    assert (payload(done)["unwrap_wrap_calls"], payload(done)["reencrypt_calls"]) == (2, 0)  # key, anchor
    on_kms = fieldcrypt.Keyring("pii", KmsMasterKey(arn, client=aws_client("kms")), store)
    assert on_kms.decrypt(value, fieldcrypt.Place("users", "ssn")) == b"123-45-6789"


def test_blind_index_rotation_through_the_cli(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """keys rotate --purpose blind_index, then reindex --retire-old: every index row on the new key."""
    place = fieldcrypt.Place("users", "ssn")
    create_indexed_users(
        engine,
        (
            {"id": i, "ssn": keyring.encrypt(ssn(i), place), "ssn_bidx": keyring.blind_index(ssn(i), place)}
            for i in range(1, 9)
        ),
    )
    old = raw(engine, "ssn_bidx")
    assert run("keys", "rotate", "--purpose", "blind_index").exit_code == 0
    done = run(
        "reindex", "users.ssn", "--codec", "text", "--retire-old", "--batch-size", "3", json_output=True
    )
    assert done.exit_code == 0, done.stderr
    assert payload(done)["written"] == 8
    fresh = fieldcrypt.Keyring("pii", keyring.master_key, keyring.key_store)  # a new process
    new = raw(engine, "ssn_bidx")
    assert all(
        new[i] != old[i] and [new[i]] == fresh.blind_index_candidates(ssn(i), place) for i in range(1, 9)
    )
