"""Key-store robustness (issue 8, section 3): an edited row is skipped and reported, a deleted
current key is noticed at refresh, and a key is never made under the wrong master key."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result

import fieldcrypt
from fieldcrypt.place import Place
from fieldcrypt.rotation import admin
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore
from fieldcrypt.stores.sql import SqlKeyStore

PLACE = Place("users", "ssn")
JUNK = {"status": "bogus", "wraps": "{not json", "mac": "zz"}


@pytest.fixture
def keyring(sqlite_engine: sa.Engine) -> fieldcrypt.Keyring:
    store = SqlKeyStore(sqlite_engine)
    store.create_table()
    return fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)


@pytest.mark.parametrize(
    ("column", "junk"),
    [
        ("status", "bogus"),
        ("wraps", "{not json"),
        ("wraps", '{"local:x": "@@not base64@@"}'),
        ("wraps", "[]"),
    ],
)
def test_an_edited_row_is_skipped_and_reported(
    keyring: fieldcrypt.Keyring, column: str, junk: str, caplog: Any
) -> None:
    """A retired row edited to junk (status, JSON, base64) neither crashes nor blocks writes; it is listed."""
    first = keyring.encrypt("a", PLACE)[1:21].hex()
    keyring.rotate()
    admin.retire(keyring, first)
    store = keyring.key_store
    assert isinstance(store, SqlKeyStore)
    with store.engine.begin() as conn:
        conn.execute(sa.update(store.table).where(store.table.c.key_id == first).values({column: junk}))
    caplog.set_level(logging.WARNING)
    keyring.refresh()
    blob = keyring.encrypt("b", PLACE)
    assert keyring.decrypt(blob, PLACE) == b"b"
    assert [d.key_id for d in store.damaged("pii")] == [first]
    assert f"key-store row {first} of keyring pii is unusable" in caplog.text
    assert first not in [r.key_id for r in keyring.records()]


def test_an_edited_dynamodb_item_is_skipped_and_reported(aws_client: Callable[..., Any]) -> None:
    """A DynamoDB item with a junk purpose or wraps is skipped and reported; the keyring writes on."""
    store = DynamoDBKeyStore(f"keys_{os.urandom(4).hex()}", client=aws_client("dynamodb"))
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)
    first = keyring.encrypt("a", PLACE)[1:21].hex()
    store.client.update_item(
        TableName=store.table,
        Key={"key_id": {"S": first}},
        UpdateExpression="SET #w = :w",
        ExpressionAttributeNames={"#w": "wraps"},
        ExpressionAttributeValues={":w": {"S": "junk"}},
    )
    keyring.refresh()
    second = keyring.encrypt("b", PLACE)[1:21].hex()
    assert second != first
    assert [d.key_id for d in store.damaged("pii")] == [first]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_damaged_rows_show_in_keys_list_and_status(
    engine: sa.Engine, key_file: Path, run: Callable[..., Result]
) -> None:
    """`fieldcrypt keys list` and `fieldcrypt status` name an unreadable key-store row and why."""
    store = SqlKeyStore(engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store)
    first = keyring.encrypt("a", PLACE)[1:21].hex()
    with engine.begin() as conn:
        conn.execute(sa.update(store.table).where(store.table.c.key_id == first).values(status="bogus"))
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, ssn BLOB)"))
    listed = run("keys", "list", json_output=True)
    assert listed.exit_code == 0, listed.stderr
    assert [d["key_id"] for d in payload(listed)["damaged"]] == [first]
    assert "ValueError" in payload(listed)["damaged"][0]["reason"]
    status = run("status", "users.ssn", "--codec", "text", json_output=True)
    assert [d["key_id"] for d in payload(status)["damaged_key_rows"]] == [first]


def test_the_current_key_deleted_under_a_warm_writer_is_dropped_at_refresh(
    keyring: fieldcrypt.Keyring,
) -> None:
    """The current key's row deleted: at its next refresh the writer stops using that key."""
    first = keyring.encrypt("a", PLACE)[1:21].hex()
    store = keyring.key_store
    assert isinstance(store, SqlKeyStore)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(store.table).where(store.table.c.key_id == first))
    keyring.refresh()
    blob = keyring.encrypt("b", PLACE)
    assert blob[1:21].hex() != first
    reader = fieldcrypt.Keyring("pii", keyring.master_key, store)
    assert reader.decrypt(blob, PLACE) == b"b"  # readable elsewhere: its key is in the store


def test_rotate_with_the_wrong_master_key_is_refused(keyring: fieldcrypt.Keyring, tmp_path: Path) -> None:
    """A key is never made under a master key other than the keyring's: refused, nothing stored."""
    keyring.warm_up()
    before = [r.key_id for r in keyring.records()]
    wrong = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), keyring.key_store)
    with pytest.raises(fieldcrypt.ConfigurationError, match="keys rewrap"):
        wrong.rotate()
    assert [r.key_id for r in keyring.records()] == before


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_keys_rotate_with_the_wrong_key_file_exits_non_zero(
    engine: sa.Engine, key_file: Path, run: Callable[..., Result], tmp_path: Path, monkeypatch: Any
) -> None:
    """`fieldcrypt keys rotate` with another key file fails, says what to do, and stores no key."""
    store = SqlKeyStore(engine)
    store.create_table()
    right = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store)
    right.warm_up()
    other = tmp_path / "other.key"
    fieldcrypt.LocalMasterKey.write_new(other)
    monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", f"file:{other}")
    done = run("keys", "rotate")
    assert done.exit_code != 0
    assert "configure the keyring's master key" in done.stderr.lower()
    assert len(right.records()) == 2  # the anchor and the one data key
