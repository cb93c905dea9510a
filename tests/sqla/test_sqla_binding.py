"""Ciphertexts are bound to their column (always) and, with bind_row=True, to their row."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqla_models import Counter, Patient, User
from sqlalchemy import String, insert, select, update
from sqlalchemy.orm import Session

from fieldcrypt import ConfigurationError, DecryptionError, QueryNotSupportedError
from fieldcrypt.sqlalchemy import Encrypted, Sealed, column_spec

A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def test_value_copied_to_another_column_fails_opaquely(db: sa.Engine) -> None:
    """users.ssn's ciphertext pasted into users.tax_id fails to decrypt, naming table and column."""
    with Session(db) as session:
        session.add(User(id=1, name="a", ssn="123-45-6789"))
        session.commit()
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE users SET tax_id = ssn WHERE id = 1"))
    with Session(db) as session, pytest.raises(DecryptionError) as caught:
        session.get(User, 1)
    assert str(caught.value) == "cannot decrypt users.tax_id"
    assert (caught.value.table, caught.value.column) == ("users", "tax_id")
    assert "123-45-6789" not in repr(caught.value)


def test_row_bound_values_round_trip_through_the_orm(db: sa.Engine) -> None:
    """Insert, load, update, refresh and search of row-bound values work through the ORM."""
    with Session(db) as session:
        session.add_all(
            [Patient(id=A, mrn="MRN-1", notes="asthma"), Patient(id=B, mrn="MRN-2", notes="none")]
        )
        session.commit()
        assert session.get(Patient, A).notes == "asthma"  # type: ignore[union-attr]  # kept after flush
    with Session(db) as session:
        patient = session.get(Patient, A)
        assert patient is not None
        assert (patient.mrn, patient.notes) == ("MRN-1", "asthma")
        patient.notes = "asthma, mild"
        session.commit()
        assert patient.notes == "asthma, mild"
        session.refresh(patient)
        assert patient.notes == "asthma, mild"
        assert session.scalars(select(Patient.id).where(Patient.mrn == "MRN-2")).one() == B
        patient.mrn = "MRN-1b"
        session.commit()
        assert session.scalars(select(Patient.id).where(Patient.mrn == "MRN-1b")).one() == A
        assert session.scalars(select(Patient.id).where(Patient.mrn == "MRN-1")).all() == []
    stored = raw_rows(db, "SELECT notes FROM patients")
    for row in stored:
        assert_ciphertext(row.notes, b"asthma")


def test_row_bound_value_copied_to_another_row_fails_naming_the_row(db: sa.Engine) -> None:
    """Patient A's notes pasted into patient B's row fail to decrypt, naming table, column and row."""
    with Session(db) as session:
        session.add_all([Patient(id=A, notes="A's diagnosis"), Patient(id=B, notes="B's diagnosis")])
        session.commit()
    a_notes = raw_rows(db, "SELECT notes FROM patients WHERE id = :id", id=column_id(db, A))[0].notes
    with db.begin() as conn:
        conn.execute(update(Patient.__table__).where(Patient.id == B).values(notes=Sealed(bytes(a_notes))))
    with Session(db) as session, pytest.raises(DecryptionError) as caught:
        session.get(Patient, B)
    assert str(caught.value) == f"cannot decrypt patients.notes (row {B!r})"
    assert caught.value.row == repr(B)


def column_id(engine: sa.Engine, value: uuid.UUID) -> object:
    """How the database stores a UUID key: native where the dialect has a UUID type (PostgreSQL, and
    MariaDB from SQLAlchemy 2.1), else hex text (SQLite, MariaDB on SQLAlchemy 2.0)."""
    return value if engine.dialect.supports_native_uuid else value.hex


def test_core_insert_and_bulk_mappings_seal_by_row(db: sa.Engine) -> None:
    """Core executemany and bulk_insert_mappings with client ids seal row-bound values; Core reads
    them as Sealed, opened by column_spec with the row."""
    with db.begin() as conn:
        conn.execute(insert(Patient.__table__), [{"id": A, "notes": "core", "mrn": "M-A"}])
    with Session(db) as session:
        session.bulk_insert_mappings(Patient, [{"id": B, "notes": "bulk", "mrn": "M-B"}])
        session.commit()
    spec = column_spec("patients", "notes", Patient.metadata)
    with db.connect() as conn:
        rows = {r.id: r.notes for r in conn.execute(select(Patient.__table__))}
    assert all(isinstance(v, Sealed) for v in rows.values())
    assert spec.decrypt(rows[A], row=A) == "core"
    assert spec.decrypt(rows[B], row=B) == "bulk"
    with pytest.raises(DecryptionError):
        spec.decrypt(rows[A], row=B)
    with Session(db) as session:
        assert session.scalars(select(Patient.notes).where(Patient.mrn == "M-B")).one() is not None


def test_primary_key_change_reseals_row_bound_values(db: sa.Engine) -> None:
    """Changing a row's key re-encrypts its row-bound values for the new key."""
    with Session(db) as session:
        session.add(Patient(id=A, notes="moves"))
        session.commit()
        patient = session.get(Patient, A)
        assert patient is not None
        patient.id = B
        session.commit()
    with Session(db) as session:
        assert session.get(Patient, B).notes == "moves"  # type: ignore[union-attr]


def test_core_primary_key_change_of_a_row_bound_table(db: sa.Engine) -> None:
    """A Core UPDATE moving a row's key refuses to leave row-bound values behind, and seals the ones it sets to the new key."""
    with Session(db) as session:
        session.add(Patient(id=A, mrn="MRN-1", notes="moves"))
        session.commit()
    table = Patient.__table__
    for stmt, params in [
        (update(table).where(Patient.id == A).values(id=B), None),
        (update(table).where(Patient.id == A).values(id=B, notes="only one"), None),
        (update(table).where(Patient.id == sa.bindparam("old")), [{"old": A, "id": B}]),
    ]:
        with (
            db.begin() as conn,
            pytest.raises(QueryNotSupportedError, match=r"patients\.\w+ is bound to its row's primary key"),
        ):
            conn.execute(stmt, params)
    with Session(db) as session:
        assert session.get_one(Patient, A).notes == "moves"
    with db.begin() as conn:  # every row-bound column set: sealed to the new key, not the pinned one
        conn.execute(update(table).where(Patient.id == A).values(id=B, notes="moved", mrn=None))
    with Session(db) as session:
        assert (session.get(Patient, A), session.get_one(Patient, B).notes) == (None, "moved")
    with db.begin() as conn:
        conn.execute(
            update(table).where(Patient.id == sa.bindparam("old")),
            [{"old": B, "id": A, "notes": "back", "mrn": "MRN-2"}],
        )
    with Session(db) as session:
        patient = session.get_one(Patient, A)
        assert (patient.notes, patient.mrn) == ("back", "MRN-2")
    ((notes,),) = raw_rows(db, "select notes from patients")
    assert_ciphertext(notes, b"back")


def test_database_assigned_key_is_a_clear_error(db: sa.Engine) -> None:
    """Row binding with an autoincrement key cannot hold: a clear error, and nothing is written."""
    with Session(db) as session:
        session.add(Counter(secret="x"))
        with pytest.raises(
            ConfigurationError, match=r"counters\.secret is bound to its row, but the primary key"
        ):
            session.commit()
    assert raw_rows(db, "SELECT count(*) AS n FROM counters")[0].n == 0


def test_row_bound_update_without_a_row_is_refused(db: sa.Engine) -> None:
    """A Core UPDATE of a plain value into a row-bound column whose WHERE does not name the row by
    primary key is refused; column_spec().seal(value, row=...) is the explicit way, index included."""
    with Session(db) as session:
        session.add(Patient(id=A, notes="kept"))
        session.commit()
    stmt = update(Patient.__table__).where(Patient.notes.is_not(None)).values(notes="replaced")
    with (
        db.begin() as conn,
        pytest.raises(QueryNotSupportedError, match=r"patients\.notes is bound to its row"),
    ):
        conn.execute(stmt)
    with Session(db) as session:
        assert session.get(Patient, A).notes == "kept"  # type: ignore[union-attr]
    notes, mrn = (
        column_spec("patients", "notes", Patient.metadata),
        column_spec("patients", "mrn", Patient.metadata),
    )
    with db.begin() as conn:  # the explicit way: seal for the row
        conn.execute(
            update(Patient.__table__)
            .where(Patient.id == A)
            .values(notes=notes.seal("replaced", row=A), mrn=mrn.seal("MRN-9", row=A))
        )
    with Session(db) as session:
        assert session.get(Patient, A).notes == "replaced"  # type: ignore[union-attr]
        assert session.scalars(select(Patient.id).where(Patient.mrn == "MRN-9")).one() == A


def test_type_without_a_table_is_a_clear_error(db: sa.Engine) -> None:
    """An Encrypted type used outside a column has no place: a clear error; place= makes it usable."""
    loose = sa.bindparam("v", "secret", type_=Encrypted(String(10), keyring="pii"))
    message = (
        r"\(fieldcrypt.errors.ConfigurationError\) Encrypted\(String\(length=10\), keyring='pii'\) is not"
    )
    with db.connect() as conn, pytest.raises(sa.exc.StatementError, match=message):
        conn.execute(select(loose))
    placed = sa.bindparam(
        "v", "secret", type_=Encrypted(String(10), keyring="pii", place=("users", "tax_id"))
    )
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id, name, tax_id) VALUES (1, 'a', :v)").bindparams(placed))
    with Session(db) as session:
        assert session.get(User, 1).tax_id == "secret"  # type: ignore[union-attr]
