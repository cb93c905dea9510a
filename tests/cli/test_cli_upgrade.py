"""Upgrading a fieldcrypt 0.1 key store: reads go on, writes are refused until `keys upgrade` (or
op.upgrade_key_store) adds the columns, the anchor and the MACs (issue 8, section 1)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from cli_helpers import payload
from click.testing import Result

import fieldcrypt
from fieldcrypt import _aead
from fieldcrypt import format as fmt
from fieldcrypt.keys.record import Purpose, kms_context
from fieldcrypt.stores.sql import SqlKeyStore

PLACE = fieldcrypt.Place("users", "ssn")


def make_01_store(engine: sa.Engine, master: fieldcrypt.LocalMasterKey) -> tuple[str, bytes]:
    """The 0.1 table layout with one 0.1 data key; returns its id and a value encrypted under it."""
    meta = sa.MetaData()
    table = sa.Table(
        "fieldcrypt_keys",
        meta,
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("keyring", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime().with_variant(sa.dialects.mysql.DATETIME(fsp=6), "mariadb")),
        sa.Column("wraps", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    meta.create_all(engine)
    data_key = _aead.new_key()
    key_id = fmt.key_id_for(data_key).hex()
    wrapped = master.wrap(data_key, kms_context("pii", key_id, Purpose.ENCRYPTION))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(table).values(
                key_id=key_id, keyring="pii", purpose="encryption", status="active", revision=0,
                created_at=datetime.now(UTC).replace(tzinfo=None),
                wraps=json.dumps({master.key_id: base64.b64encode(wrapped).decode()}),
            )
        )  # fmt: skip
    header = fmt.header_for(bytes.fromhex(key_id))
    return key_id, header + _aead.Aead(data_key).seal(b"123-45-6789", header + PLACE.encoded)


def test_01_store_reads_refuses_writes_and_upgrades(engine: sa.Engine) -> None:
    """0.1 layout: values decrypt, encrypting is refused with the fix; after upgrade the 0.1 key is current."""
    master = fieldcrypt.LocalMasterKey.generate()
    key_id, blob = make_01_store(engine, master)
    keyring = fieldcrypt.Keyring("pii", master, SqlKeyStore(engine))
    assert keyring.decrypt(blob, PLACE) == b"123-45-6789"
    with pytest.raises(fieldcrypt.ConfigurationError, match="fieldcrypt keys upgrade"):
        keyring.encrypt("x", PLACE)
    from fieldcrypt.rotation import admin

    adopted = admin.upgrade(keyring)
    assert [(r.key_id, r.generation) for r in adopted] == [(key_id, 1)]
    assert admin.upgrade(keyring) == []  # idempotent
    assert keyring.key_store.upgraded
    assert keyring.encrypt("x", PLACE)[1:21].hex() == key_id
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT purpose, generation, mac FROM fieldcrypt_keys")).all()
    assert sorted((p, g, len(m)) for p, g, m in rows) == [("anchor", 0, 64), ("encryption", 1, 64)]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_keys_upgrade_through_the_cli(engine: sa.Engine, key_file: Path, run: Callable[..., Result]) -> None:
    """`fieldcrypt keys upgrade` upgrades a 0.1 store and prints the anchor to pin."""
    master = fieldcrypt.LocalMasterKey.from_file(key_file)
    key_id, blob = make_01_store(engine, master)
    listed = run("keys", "list", json_output=True)
    assert listed.exit_code == 0, listed.stderr
    assert payload(listed)["anchor"] is None
    assert payload(listed)["keys"][0]["standing"] == "unauthenticated"
    done = run("keys", "upgrade", json_output=True)
    assert done.exit_code == 0, done.stderr
    anchor = payload(done)["anchor"]
    assert [k["key_id"] for k in payload(done)["authenticated"]] == [key_id]
    listed = run("keys", "list", json_output=True)
    assert payload(listed)["anchor"] == anchor
    assert len(anchor) == 40
    assert {k["key_id"]: k["standing"] for k in payload(listed)["keys"]}[key_id] == "current"
    pinned = fieldcrypt.Keyring("pii", master, SqlKeyStore(engine), anchor_id=anchor)
    assert pinned.encrypt("x", PLACE)[1:21].hex() == key_id
    assert pinned.decrypt(blob, PLACE) == b"123-45-6789"


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_upgrade_key_store_alembic_operation(engine: sa.Engine) -> None:
    """op.upgrade_key_store(keyring=...) in a revision upgrades the registered keyring's 0.1 store."""
    import fieldcrypt.alembic

    master = fieldcrypt.LocalMasterKey.generate()
    key_id, _ = make_01_store(engine, master)
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", master, SqlKeyStore(engine)))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            Operations(context).upgrade_key_store("pii")
    assert keyring.encrypt("x", PLACE)[1:21].hex() == key_id


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_anchor_id_setting_pins_the_cli_keyring(
    engine: sa.Engine, key_file: Path, run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FIELDCRYPT_ANCHOR_ID pins the CLI's keyring: its own anchor works, any other is refused."""
    store = SqlKeyStore(engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store)
    keyring.warm_up()
    monkeypatch.setenv("FIELDCRYPT_ANCHOR_ID", str(keyring.anchor_fingerprint()))
    assert run("keys", "rotate").exit_code == 0
    monkeypatch.setenv("FIELDCRYPT_ANCHOR_ID", "0" * 40)
    refused = run("keys", "rotate")
    assert refused.exit_code != 0
    assert "pinned" in refused.stderr
