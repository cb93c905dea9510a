"""``register(..., replace=True)`` takes effect for engines already in use; it is never silently ignored."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt.sqlalchemy import Encrypted


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(Encrypted(sa.String(40), keyring="pii"))


def _fresh() -> fieldcrypt.Keyring:
    return fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())


def test_replacing_a_keyring_reaches_an_engine_already_in_use(sqlite_engine: sa.Engine) -> None:
    """After replace=True, the same engine writes under the new keyring and reads through it."""
    first = fieldcrypt.register(_fresh())
    Base.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add(Note(id=1, body="written under the first keyring"))
        session.commit()
        assert session.get_one(Note, 1).body == "written under the first keyring"  # processors now built

    second = fieldcrypt.register(_fresh(), replace=True)
    with Session(sqlite_engine) as session:
        session.add(Note(id=2, body="written under the second keyring"))
        session.commit()
    stored = {
        row.id: assert_ciphertext(row.body) for row in raw_rows(sqlite_engine, "SELECT id, body FROM notes")
    }
    assert fieldcrypt.Keyring.key_id_of(stored[1]) == first.current_key_id()
    assert fieldcrypt.Keyring.key_id_of(stored[2]) == second.current_key_id() != first.current_key_id()
    with Session(sqlite_engine) as session:
        assert session.get_one(Note, 2).body == "written under the second keyring"
    with Session(sqlite_engine) as session, pytest.raises(fieldcrypt.DecryptionError, match=r"notes\.body"):
        session.get_one(Note, 1)  # read through the second keyring, which never had the first's key

    fieldcrypt.register(first, replace=True)  # and back: the first keyring reads its own value again
    with Session(sqlite_engine) as session:
        assert session.get_one(Note, 1).body == "written under the first keyring"


def test_replacing_without_saying_so_is_refused() -> None:
    """A second keyring under a taken name needs replace=True: two configurations never race."""
    fieldcrypt.register(_fresh())
    with pytest.raises(fieldcrypt.ConfigurationError, match="already registered; pass replace=True"):
        fieldcrypt.register(_fresh())


def test_an_unregistered_keyring_stops_serving_engines_in_use(sqlite_engine: sa.Engine) -> None:
    """After unregister, an engine that used the keyring refuses to encrypt instead of using a stale copy."""
    fieldcrypt.register(_fresh())
    Base.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add(Note(id=1, body="x"))
        session.commit()
    fieldcrypt.unregister("pii")
    with Session(sqlite_engine) as session:
        session.add(Note(id=2, body="y"))
        with pytest.raises(sa.exc.StatementError, match="no keyring named 'pii' is registered"):
            session.commit()
