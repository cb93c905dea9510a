"""Two applications on one table must index a searchable column alike: keyring name, token length
and normaliser are recorded beside the data keys, and a process with other options is refused
(instead of searching with tokens that match nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import ConfigurationError
from fieldcrypt.sqlalchemy import Encrypted, execute_verified
from fieldcrypt.stores.sql import SqlKeyStore


def digits(value: str) -> str:
    return value.replace("-", "")


def users_table(keyring: str = "pii", normalizer: Callable[[Any], Any] | None = digits) -> sa.Table:
    return sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", Encrypted(sa.String(11), keyring=keyring, searchable=True, normalizer=normalizer)),
    )


def search(engine: sa.Engine, users: sa.Table, value: str) -> list[int]:
    with engine.connect() as conn:
        return list(execute_verified(conn, sa.select(users.c.id).where(users.c.ssn == value)).scalars())


@pytest.fixture
def first_app(engine: sa.Engine) -> tuple[sa.Table, fieldcrypt.Keyring]:
    """Application A: keyring "pii" (key store in the same database), ssn normalised to digits, one row written."""
    users, keyring = _first_on(engine)
    assert search(engine, users, "123456789") == [1]
    return users, keyring


def second_keyring(first: fieldcrypt.Keyring, name: str = "pii", **options: Any) -> fieldcrypt.Keyring:
    """Application B's keyring: the same master key and key store, its own options."""
    keyring = fieldcrypt.Keyring(name, first.master_key, first.key_store, **options)
    return fieldcrypt.register(keyring, replace=True)


def test_another_normalizer_is_refused_on_search_and_write(
    engine: sa.Engine, first_app: tuple[sa.Table, fieldcrypt.Keyring]
) -> None:
    """Application B declares ssn without the normaliser: its search and its insert raise, naming both."""
    _users, first = first_app
    second_keyring(first)
    other = users_table(normalizer=None)
    with pytest.raises(ConfigurationError) as caught:
        search(engine, other, "123456789")
    assert str(caught.value).startswith(
        "users.ssn: its blind index was built with keyring 'pii', 16-byte tokens and normalizer "
        "test_sqla_index_options.digits; this process uses keyring 'pii', 16-byte tokens and "
        "normalizer none"
    )
    with pytest.raises(sa.exc.StatementError) as refused, engine.begin() as conn:
        conn.execute(other.insert(), [{"id": 2, "ssn": "987-65-4321"}])
    assert isinstance(refused.value.orig, ConfigurationError)  # raised by the index column's default
    assert "normalizer none" in str(refused.value.orig)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 1


def test_another_token_length_is_refused(sqlite_engine: sa.Engine) -> None:
    """Application B truncates tokens to 8 bytes where A kept 16: refused."""
    users, first = _first_on(sqlite_engine)
    second_keyring(first, blind_index_bytes=8)
    with pytest.raises(ConfigurationError, match=r"16-byte tokens .* 8-byte tokens"):
        search(sqlite_engine, users, "123456789")


def test_another_keyring_name_is_refused(sqlite_engine: sa.Engine) -> None:
    """Application B names the column's keyring "pii2" (same key store): refused."""
    _users, first = _first_on(sqlite_engine)
    second_keyring(first, name="pii2")
    with pytest.raises(ConfigurationError, match=r"keyring 'pii'.*keyring 'pii2'"):
        search(sqlite_engine, users_table(keyring="pii2"), "123456789")


def test_the_same_options_in_another_process_search_normally(sqlite_engine: sa.Engine) -> None:
    """A second keyring object with the same options (another process) finds the row."""
    users, first = _first_on(sqlite_engine)
    second_keyring(first)
    assert search(sqlite_engine, users_table(), "123-45-6789") == [1]
    assert users is not None


def _first_on(engine: sa.Engine) -> tuple[sa.Table, fieldcrypt.Keyring]:
    """Application A's keyring, table and one row; SQLite defers the record to the next transaction."""
    store = SqlKeyStore(engine)
    store.create_table()
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store))
    users = users_table()
    users.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": 1, "ssn": "123-45-6789"}])
    with engine.begin():
        pass
    return users, keyring
