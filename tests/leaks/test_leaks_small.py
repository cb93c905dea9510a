"""Smaller leak paths: a blind-index key in a frame local, plaintext read from an encrypted column,
SQL text given as an Alembic operation's type, reprs of keys."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from leak_scanner import Secrets

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import Place
from fieldcrypt.errors import NotCiphertextError
from fieldcrypt.sqlalchemy import Encrypted

PLACE = Place("people", "ssn")


def test_unencodable_blind_index_value_fails_before_the_key_is_loaded(
    master_key: fieldcrypt.LocalMasterKey, secrets: Secrets
) -> None:
    """A lone surrogate: TypeError; no frame of the traceback holds the blind-index key."""
    keyring = fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore())
    keyring.blind_index("123-45-6789", PLACE)  # the index key exists and is cached
    with pytest.raises(TypeError, match="lone surrogate") as caught:
        keyring.blind_index("123-45-\udc00", PLACE)
    secrets.keyring(keyring).assert_exception_clean(caught.value, locals_too=True)


def test_plaintext_in_an_encrypted_column_is_named_as_such(
    master_key: fieldcrypt.LocalMasterKey, secrets: Secrets
) -> None:
    """A plaintext value read as a ciphertext: "not a fieldcrypt ciphertext", the value not quoted."""
    keyring = fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore())
    value = b"0123-45-6789 plaintext left behind by an unfinished migration......"
    with pytest.raises(NotCiphertextError, match="not a fieldcrypt ciphertext") as caught:
        keyring.decrypt(value, PLACE)
    assert isinstance(caught.value, fieldcrypt.DecryptionError)
    assert "version" not in str(caught.value)
    secrets.plaintext(value.decode()[:12]).assert_exception_clean(caught.value)
    future = bytes([2]) + bytes(60)
    with pytest.raises(fieldcrypt.UnsupportedFormatError, match="format version 2"):
        keyring.decrypt(future, PLACE)


@pytest.fixture
def users(sqlite_engine: sa.Engine, master_key: fieldcrypt.LocalMasterKey) -> tuple[sa.Engine, bytes]:
    """users(id, ssn) with one encrypted SSN, and a table x an injection would drop."""
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore()))
    blob = keyring.encrypt("123-45-6789", Place("users", "ssn"))
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE x (id INTEGER)"))
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, ssn BLOB)"))
        conn.execute(sa.text("INSERT INTO users VALUES (1, :b)"), {"b": blob})
    return sqlite_engine, blob


def test_decrypt_column_refuses_sql_text_as_its_type(users: tuple[sa.Engine, bytes]) -> None:
    """op.decrypt_column(existing_type="TEXT; DROP TABLE x; --"): refused before any value changes."""
    engine, blob = users
    with engine.connect() as conn:
        op = Operations(MigrationContext.configure(conn))
        with pytest.raises(fieldcrypt.ConfigurationError, match="must be a SQLAlchemy type object"):
            op.decrypt_column(
                "users",
                "ssn",
                type_=Encrypted(sa.String(11), keyring="pii"),
                existing_type="TEXT; DROP TABLE x; --",  # type: ignore[arg-type]
            )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM x")).scalar() == 0
        assert conn.execute(sa.text("SELECT ssn FROM users")).scalar() == blob


def test_reprs_show_no_key_material(master_key: fieldcrypt.LocalMasterKey, secrets: Secrets) -> None:
    """Keyring, master key, cache entries and records: their reprs name keys, never show them."""
    keyring = fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore())
    keyring.encrypt("x", PLACE)
    keyring.blind_index("x", PLACE)
    shown = [repr(keyring), repr(master_key), repr(keyring.cache), *map(repr, keyring.records())]
    shown += [repr(vars(keyring))]
    secrets.keyring(keyring)
    for text in shown:
        secrets.assert_clean(text, "repr")
