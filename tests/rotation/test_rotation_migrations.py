"""The real Alembic environment in migrations/: up and down on PostgreSQL, MariaDB and SQLite,
with the raw table checked after each step; offline --sql mode refused for data operations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from rotation_helpers import raw, ssn

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.stores.sql import SqlKeyStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def alembic_config(engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """migrations/alembic.ini pointed at the test database, with two local master key files."""
    fieldcrypt.LocalMasterKey.write_new(tmp_path / "master.key")
    fieldcrypt.LocalMasterKey.write_new(tmp_path / "next.key")
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", f"file:{tmp_path / 'master.key'}")
    monkeypatch.setenv("FIELDCRYPT_REWRAP_TO", f"file:{tmp_path / 'next.key'}")
    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    config.attributes["configure_logger"] = False
    return config


def _column_type(engine: sa.Engine) -> Any:
    return next(c["type"] for c in sa.inspect(engine).get_columns("users") if c["name"] == "ssn")


def test_migrations_up_and_down(engine: sa.Engine, alembic_config: Config, tmp_path: Path) -> None:
    """create -> encrypt -> rotate+reencrypt -> rewrap, then all the way down, raw table checked each step."""
    command.upgrade(alembic_config, "0001")
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO users (id, email, ssn) VALUES (:id, :email, :ssn)"),
            [
                {"id": i, "email": f"u{i}@example.com", "ssn": ssn(i) if i % 10 else None}
                for i in range(1, 41)
            ],
        )
    command.upgrade(alembic_config, "0002")
    store = SqlKeyStore(engine)
    master = fieldcrypt.LocalMasterKey.from_file(tmp_path / "master.key")
    keyring = fieldcrypt.Keyring("pii", master, store)
    place = fieldcrypt.Place("users", "ssn")
    stored = raw(engine)
    assert sum(v is None for v in stored.values()) == 4
    first_keys = {keyring.key_id_of(v) for v in stored.values() if v is not None}
    assert len(first_keys) == 1
    for i, value in stored.items():
        if value is not None:
            assert isinstance(value, bytes)
            assert fmt.looks_like_ciphertext(value)
            assert keyring.decrypt(value, place) == ssn(i).encode()
    if engine.dialect.name != "sqlite":
        assert isinstance(_column_type(engine), sa.LargeBinary | sa.types._Binary)

    command.upgrade(alembic_config, "0003")
    stored = raw(engine)
    second_keys = {keyring.key_id_of(v) for v in stored.values() if v is not None}
    assert len(second_keys) == 1
    assert second_keys != first_keys
    assert len(store.list("pii", fieldcrypt.Purpose.ENCRYPTION)) == 2

    command.upgrade(alembic_config, "0004")
    assert raw(engine) == stored  # rewrap touches no row
    next_key = fieldcrypt.LocalMasterKey.from_file(tmp_path / "next.key")
    assert all(set(r.wraps) == {master.key_id, next_key.key_id} for r in store.list("pii"))
    only_next = fieldcrypt.Keyring("pii", next_key, store)
    assert all(only_next.decrypt(v, place) == ssn(i).encode() for i, v in stored.items() if v is not None)

    command.downgrade(alembic_config, "0001")
    plain = raw(engine)
    assert plain == {i: (ssn(i) if i % 10 else None) for i in range(1, 41)}
    if engine.dialect.name != "sqlite":
        kind = _column_type(engine)
        assert isinstance(kind, sa.String)
        assert kind.length == 11
    command.downgrade(alembic_config, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}


def test_offline_sql_mode_is_refused_for_data_operations(
    engine: sa.Engine, alembic_config: Config, capsys: Any
) -> None:
    """`alembic upgrade --sql` renders the schema revision but refuses encrypt_column clearly."""
    command.upgrade(alembic_config, "0001", sql=True)
    assert "CREATE TABLE fieldcrypt_keys" in capsys.readouterr().out
    with pytest.raises(
        ConfigurationError, match=r"op\.encrypt_column\(\) reads and rewrites rows.*offline --sql mode"
    ):
        command.upgrade(alembic_config, "0001:0002", sql=True)
