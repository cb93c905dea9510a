"""`Encrypted(..., subject="user_id")`: each row's values under its subject's own key, on SQLite,
PostgreSQL and MariaDB, through the ORM and Core; one subject erased alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqlalchemy import Integer, String, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import ConfigurationError, DecryptionError, KeyDestroyedError, QueryNotSupportedError
from fieldcrypt.sqlalchemy import Encrypted, Sealed


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "subject_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[str | None] = mapped_column(Encrypted(String(200), keyring="pii", subject="user_id"))
    title: Mapped[str | None] = mapped_column(Encrypted(String(200), keyring="pii"))


@pytest.fixture
def notes(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> Iterator[sa.Engine]:
    """The subject_notes table on each of the three databases."""
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)


def _body(engine: sa.Engine, note_id: int) -> bytes:
    (row,) = raw_rows(engine, "SELECT body FROM subject_notes WHERE id = :i", i=note_id)
    return bytes(row[0])


def test_orm_values_use_each_subjects_key_and_shredding_erases_one_subject(
    notes: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Raw values are ciphertext under each user's key (autoincrement ids are fine); shredding user 1 fails its rows only."""
    with Session(notes) as session:
        session.add_all(
            [
                Note(user_id=1, body="alice's secret", title="t1"),
                Note(user_id=2, body="bob's secret", title="t2"),
            ]
        )
        session.commit()
    alice, bob = _body(notes, 1), _body(notes, 2)
    assert_ciphertext(alice, b"alice's secret")
    assert_ciphertext(bob, b"bob's secret")
    (title,) = raw_rows(notes, "SELECT title FROM subject_notes WHERE id = 1")
    assert len({alice[:21], bob[:21], bytes(title[0])[:21]}) == 3  # two subject keys, the shared key
    with Session(notes) as session:
        assert [n.body for n in session.scalars(select(Note).order_by(Note.id))] == [
            "alice's secret",
            "bob's secret",
        ]
    keyring.shred_subject(1)
    with Session(notes) as session, pytest.raises(KeyDestroyedError):
        session.get(Note, 1)
    with Session(notes) as session:
        note = session.get(Note, 2)
        assert note is not None
        assert note.body == "bob's secret"


def test_a_value_moved_to_another_subjects_row_fails(notes: sa.Engine) -> None:
    """User 1's ciphertext copied into user 2's row (same column) raises DecryptionError on load."""
    with Session(notes) as session:
        session.add_all([Note(id=1, user_id=1, body="alice"), Note(id=2, user_id=2, body="bob")])
        session.commit()
    with notes.begin() as conn:
        conn.execute(
            update(Note.__table__).where(Note.__table__.c.id == 2).values(body=Sealed(_body(notes, 1)))
        )
    with Session(notes) as session, pytest.raises(DecryptionError):
        session.get(Note, 2)


def test_changing_the_subject_reseals_the_value(notes: sa.Engine) -> None:
    """A row moved to another subject through the ORM is written under the new subject's key and reads back."""
    with Session(notes) as session:
        session.add(Note(id=1, user_id=1, body="handed over"))
        session.commit()
    before = _body(notes, 1)
    with Session(notes) as session:
        note = session.get(Note, 1)
        assert note is not None
        note.user_id = 3
        session.commit()
    assert _body(notes, 1)[:21] != before[:21]
    with Session(notes) as session:
        assert session.get(Note, 1).body == "handed over"  # type: ignore[union-attr]


def test_core_executemany_and_update_seal_per_subject(notes: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """Core insert executemany and UPDATE ... WHERE user_id = ... seal for the row's subject; raw values are ciphertext."""
    table = Note.__table__
    with notes.begin() as conn:
        conn.execute(insert(table), [{"id": i, "user_id": i % 2, "body": f"note {i}"} for i in range(1, 5)])
        conn.execute(update(table).where(table.c.user_id == 1).values(body="rewritten"))
    for i in range(1, 5):
        assert_ciphertext(_body(notes, i), b"note", b"rewritten")
    with Session(notes) as session:
        bodies = {n.id: n.body for n in session.scalars(select(Note))}
    assert bodies == {1: "rewritten", 2: "note 2", 3: "rewritten", 4: "note 4"}
    with notes.connect() as conn:
        sealed = conn.execute(select(table.c.body).where(table.c.id == 2)).scalar_one()
    assert type(sealed) is Sealed  # Core reads need the subject: opened here by hand
    assert keyring.decrypt_for_subject(0, sealed.blob, fieldcrypt.Place("subject_notes", "body")) == b"note 2"


def test_a_write_that_does_not_name_its_subject_is_refused(notes: sa.Engine) -> None:
    """No user_id on the row, or an UPDATE that does not say whose rows: refused, nothing written under the shared key."""
    table = Note.__table__
    with Session(notes) as session:
        session.add(Note(id=1, body="whose?"))
        with pytest.raises(ConfigurationError, match="user_id"):
            session.commit()
    with notes.begin() as conn, pytest.raises(ConfigurationError, match="user_id"):
        conn.execute(insert(table), [{"id": 2, "body": "whose?"}])
    with notes.begin() as conn, pytest.raises(QueryNotSupportedError, match="user_id"):
        conn.execute(update(table).where(table.c.id == 1).values(body="x"))
    assert raw_rows(notes, "SELECT body FROM subject_notes") == []


def test_a_subject_column_cannot_be_searchable() -> None:
    """searchable with subject is refused: a blind-index token would outlive the subject's erasure."""
    with pytest.raises(ConfigurationError, match="searchable"):
        Encrypted(String(11), keyring="pii", subject="user_id", searchable=True)


def test_a_core_update_changing_the_subject_alone_is_refused(notes: sa.Engine) -> None:
    """UPDATE ... SET user_id without the per-subject column would strand its value: refused, the row unchanged."""
    table = Note.__table__
    with notes.begin() as conn:
        conn.execute(insert(table), [{"id": 1, "user_id": 1, "body": "mine"}])
    with notes.begin() as conn, pytest.raises(QueryNotSupportedError, match="user_id"):
        conn.execute(update(table).where(table.c.id == 1).values(user_id=2))
    with notes.begin() as conn:
        conn.execute(update(table).where(table.c.id == 1).values(user_id=2, body="theirs"))
    with Session(notes) as session:
        note = session.get(Note, 1)
        assert note is not None
        assert (note.user_id, note.body) == (2, "theirs")


class TenantNote(Base):
    __tablename__ = "tenant_subject_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tenant_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[int] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(
        Encrypted(String(200), keyring="spii", tenant="tenant_id", subject="user_id", bind_row=True)
    )


def test_a_column_per_tenant_and_per_subject_uses_the_subjects_key_in_its_tenants_keyring(
    notes: sa.Engine,
) -> None:
    """Tenant and subject together: each value under its subject's key inside its tenant's keyring, through ORM and Core; shredding one subject of one tenant spares the rest."""
    from fieldcrypt.testing import local_tenant_keyrings

    tenants = local_tenant_keyrings("spii")
    with Session(notes) as session:
        session.add_all(
            [
                TenantNote(id=1, tenant_id="acme", user_id=7, body="acme seven"),
                TenantNote(id=2, tenant_id="globex", user_id=7, body="globex seven"),
            ]
        )
        session.commit()
    with notes.begin() as conn:
        conn.execute(
            insert(TenantNote.__table__), [{"id": 3, "tenant_id": "acme", "user_id": 8, "body": "acme eight"}]
        )
    raw = {i: bytes(b) for i, b in raw_rows(notes, "SELECT id, body FROM tenant_subject_notes")}
    for i, plain in ((1, b"acme seven"), (2, b"globex seven"), (3, b"acme eight")):
        assert_ciphertext(raw[i], plain)
    with Session(notes) as session:
        bodies = {n.id: n.body for n in session.scalars(select(TenantNote))}
    assert bodies == {1: "acme seven", 2: "globex seven", 3: "acme eight"}
    with notes.begin() as conn:  # acme's value planted in globex's row (same subject id, same row shape)
        conn.execute(update(TenantNote.__table__).where(TenantNote.id == 2).values(body=Sealed(raw[1])))
    with Session(notes) as session, pytest.raises(DecryptionError):
        session.get(TenantNote, 2)
    tenants.keyring_for("acme").shred_subject(7)
    with Session(notes) as session, pytest.raises(KeyDestroyedError):
        session.get(TenantNote, 1)
    with Session(notes) as session:
        eight = session.get(TenantNote, 3)
        assert eight is not None
        assert eight.body == "acme eight"
