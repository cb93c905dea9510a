"""SQLite has one writer: the first-ever encryption inside an open write transaction must not wait
on itself (the key store shares the database file)."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqla_models import Base, User
from sqlalchemy.orm import Session

import fieldcrypt
from fieldcrypt.stores.sql import SqlKeyStore


def test_first_encrypt_inside_a_write_transaction_does_not_hang(tmp_path: Any) -> None:
    """With SqlKeyStore on the same SQLite file and no keys yet, a transaction that already wrote
    a row then inserts encrypted, searchable values: it commits promptly, keys are created."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}", connect_args={"timeout": 2})
    store = SqlKeyStore(engine)
    store.create_table()
    Base.metadata.create_all(engine)
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store))
    outcome: list[object] = []

    def work() -> None:
        try:
            with Session(engine) as session, session.begin():
                session.execute(sa.text("INSERT INTO users (id, name) VALUES (1, 'plain first')"))
                session.add(User(id=2, name="b", ssn="123-45-6789", tax_id="1", email="b@example.com"))
                session.flush()
            outcome.append("committed")
        except Exception as exc:  # reported below, with its type
            outcome.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the transaction is stuck waiting for the key store"
    assert outcome == ["committed"]
    assert {r.purpose for r in keyring.records()} == {
        fieldcrypt.Purpose.ANCHOR,
        fieldcrypt.Purpose.ENCRYPTION,
        fieldcrypt.Purpose.BLIND_INDEX,
    }
    with Session(engine) as session:
        assert session.scalars(sa.select(User.id).where(User.ssn == "123-45-6789")).one() == 2
    engine.dispose()


def test_key_creation_outside_a_transaction_does_not_wait_on_itself(tmp_path: Any) -> None:
    """A keyring creating its first data key (its lock held, the store's own transaction opening)
    is not asked for a blind-index key from inside that transaction: no self-deadlock."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}", connect_args={"timeout": 2})
    store = SqlKeyStore(engine)
    store.create_table()
    Base.metadata.create_all(engine)  # the searchable User.ssn names keyring "pii"
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store))
    worker = threading.Thread(
        target=lambda: keyring.encrypt(b"x", fieldcrypt.Place("users", "tax_id")), daemon=True
    )
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the keyring waits on its own lock"
    assert [r.purpose for r in keyring.records()] == [
        fieldcrypt.Purpose.ANCHOR,
        fieldcrypt.Purpose.ENCRYPTION,
    ]
    engine.dispose()
