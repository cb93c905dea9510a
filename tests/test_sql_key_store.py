"""SqlKeyStore on SQLite, PostgreSQL and MariaDB: the key-store contract, and SQLite's single writer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import DataKeyRecord, Purpose, Status
from fieldcrypt.stores import KeyStoreConflict


def record(key_id: str, created: datetime | None = None, **changes: object) -> DataKeyRecord:
    base = DataKeyRecord(
        key_id=key_id,
        keyring="pii",
        purpose=Purpose.ENCRYPTION,
        status=Status.ACTIVE,
        created_at=created or datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        wraps={
            "local:abc": b"\x00wrapped\xff" * 20,
            "arn:aws:kms:us-east-1:123456789012:key/mrk-1": b"k" * 170,
        },
    )
    return base.evolve(**changes)


@pytest.fixture
def store(engine: sa.Engine) -> fieldcrypt.SqlKeyStore:
    store = fieldcrypt.SqlKeyStore(engine)
    store.create_table()
    return store


def test_put_get_list_round_trip(store: fieldcrypt.SqlKeyStore) -> None:
    """A record comes back field for field; list filters by keyring and purpose, oldest first."""
    store.put(record("b" * 40, datetime(2026, 2, 1, tzinfo=UTC)))
    store.put(record("a" * 40))
    store.put(record("c" * 40, purpose=Purpose.BLIND_INDEX))
    store.put(record("d" * 40, keyring="other"))
    assert store.get("a" * 40) == record("a" * 40)
    assert store.get("e" * 40) is None
    assert [r.key_id for r in store.list("pii", Purpose.ENCRYPTION)] == ["a" * 40, "b" * 40]
    assert len(store.list("pii")) == 3


def test_put_never_overwrites(store: fieldcrypt.SqlKeyStore) -> None:
    """Putting an existing id raises KeyStoreConflict and leaves the stored record alone."""
    store.put(record("a" * 40))
    with pytest.raises(KeyStoreConflict, match="already exists"):
        store.put(record("a" * 40, keyring="evil"))
    assert store.get("a" * 40) == record("a" * 40)


def test_update_checks_the_revision(store: fieldcrypt.SqlKeyStore) -> None:
    """An update based on a stale read is refused; a fresh one bumps the revision."""
    store.put(record("a" * 40))
    read = store.get("a" * 40)
    assert read is not None
    updated = store.update(read.evolve(status=Status.RETIRED))
    assert updated.revision == 1
    assert store.get("a" * 40) == updated
    with pytest.raises(KeyStoreConflict, match="changed since it was read"):
        store.update(read.evolve(status=Status.DESTROYED, wraps={}))
    assert store.get("a" * 40) == updated


def test_first_key_inside_an_open_sqlite_write_transaction(sqlite_engine: sa.Engine) -> None:
    """The first encryption inside the app's open SQLite write transaction neither hangs nor fails."""
    store = fieldcrypt.SqlKeyStore(sqlite_engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("create table audit (id integer primary key, note text)"))
    outcome: list[object] = []

    def app_transaction() -> None:
        try:
            with sqlite_engine.begin() as conn:
                conn.execute(sa.text("insert into audit (note) values ('holding the write lock')"))
                blob = keyring.encrypt("123-45-6789", fieldcrypt.Place("users", "ssn"))
                outcome.append(keyring.decrypt_str(blob, fieldcrypt.Place("users", "ssn")))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=app_transaction, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "encryption deadlocked against the application's write lock"
    assert outcome == ["123-45-6789"]
    assert len(store.list("pii")) == 2  # the anchor and the data key


def test_a_missing_table_says_how_to_create_it(engine: sa.Engine) -> None:
    """No key-store table: reads and writes raise a ConfigurationError naming the ways to create it."""
    store = fieldcrypt.SqlKeyStore(engine)  # create_table() never called
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)
    expected = (
        r"key-store table 'fieldcrypt_keys' does not exist in .*create_table\(\), op\.create_key_store\(\)"
    )
    with pytest.raises(fieldcrypt.ConfigurationError, match=expected):
        keyring.encrypt("x", fieldcrypt.Place("users", "ssn"))
    with pytest.raises(fieldcrypt.ConfigurationError, match=expected):
        store.get("a" * 40)
    with pytest.raises(fieldcrypt.ConfigurationError, match=expected):
        store.put(record("a" * 40))
    store.create_table()
    assert (
        keyring.decrypt(
            keyring.encrypt("x", fieldcrypt.Place("users", "ssn")), fieldcrypt.Place("users", "ssn")
        )
        == b"x"
    )
