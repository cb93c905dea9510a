"""``unique=True`` holds between ``keys rotate --purpose blind_index`` and the reindex, when old rows
still carry old-key tokens that the database's unique index cannot compare with new-key ones."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import DuplicateValueError
from fieldcrypt.keys.record import Purpose
from fieldcrypt.rotation import admin, reindex_column
from fieldcrypt.sqlalchemy import Encrypted, column_spec, execute_verified
from fieldcrypt.stores.sql import SqlKeyStore


def digits(value: str) -> str:
    return value.replace("-", "")


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(
        Encrypted(sa.String(11), keyring="pii", searchable=True, unique=True, normalizer=digits)
    )


PEOPLE = Person.__table__


@pytest.fixture
def rotated(engine: sa.Engine) -> fieldcrypt.Keyring:
    """Rows 1 (123-45-6789) and 2 (987-65-4321) written, then a new blind-index key noticed by the application."""
    store = SqlKeyStore(engine)
    store.create_table()
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store))
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(PEOPLE), [{"id": 1, "ssn": "123-45-6789"}, {"id": 2, "ssn": "987-65-4321"}])
    keyring.rotate(Purpose.BLIND_INDEX)
    keyring.refresh()
    return keyring


def count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM people")).scalar_one())


def ssn_of(engine: sa.Engine, row: int) -> str:
    with Session(engine) as session:
        person = session.get(Person, row)
        assert person is not None
        assert person.ssn is not None
        return person.ssn


def test_a_duplicate_insert_during_the_window_is_refused(
    engine: sa.Engine, rotated: fieldcrypt.Keyring
) -> None:
    """Core and ORM inserts of a value an old-key row holds (any spelling) raise DuplicateValueError; nothing is written."""
    with pytest.raises(DuplicateValueError, match=r"^people\.ssn is unique"), engine.begin() as conn:
        conn.execute(sa.insert(PEOPLE), [{"id": 3, "ssn": "123456789"}])
    with Session(engine) as session:
        session.add(Person(id=3, ssn="123-45-6789"))
        with pytest.raises(DuplicateValueError):
            session.commit()
    assert count(engine) == 2
    with engine.begin() as conn:  # another value is accepted, and found
        conn.execute(sa.insert(PEOPLE), [{"id": 3, "ssn": "555-55-5555"}])
        found = execute_verified(conn, sa.select(PEOPLE.c.id).where(PEOPLE.c.ssn == "555555555")).scalars()
        assert list(found) == [3]
    with engine.connect() as conn:  # the database holds ciphertext and tokens only
        for stored, token in conn.execute(sa.text("SELECT ssn, ssn_bidx FROM people")):
            assert b"555" not in bytes(stored)
            assert len(bytes(token)) == 16


def test_a_duplicate_update_during_the_window_is_refused(
    engine: sa.Engine, rotated: fieldcrypt.Keyring
) -> None:
    """Core and ORM updates of row 2 to row 1's value raise; rewriting row 1 with its own value does not."""
    with pytest.raises(DuplicateValueError), engine.begin() as conn:
        conn.execute(sa.update(PEOPLE).where(PEOPLE.c.id == 2).values(ssn="123-45-6789"))
    with Session(engine) as session:
        person = session.get(Person, 2)
        assert person is not None
        person.ssn = "123456789"
        with pytest.raises(DuplicateValueError):
            session.commit()
    assert ssn_of(engine, 2) == "987-65-4321"
    with engine.begin() as conn:
        conn.execute(sa.update(PEOPLE).where(PEOPLE.c.id == 1).values(ssn="123-45-6789"))
    assert ssn_of(engine, 1) == "123-45-6789"
    with Session(engine) as session:  # the ORM's UPDATE ... WHERE id = :param excludes the row too
        person = session.get(Person, 1)
        assert person is not None
        person.ssn = "123456789"
        session.commit()
    assert ssn_of(engine, 1) == "123456789"


def test_after_the_reindex_the_unique_index_alone_refuses(
    engine: sa.Engine, rotated: fieldcrypt.Keyring
) -> None:
    """Once every row is reindexed and the old key retired, the database's unique index refuses the duplicate."""
    report = reindex_column(engine, column_spec("people", "ssn", Base.metadata))
    assert report.complete
    retired, kept = admin.retire_unused_index_keys(rotated)
    assert (len(retired), kept) == (1, {})
    rotated.refresh()
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(PEOPLE), [{"id": 3, "ssn": "123456789"}])
    assert count(engine) == 2
