"""Upserts and bulk updates keep blind indexes and row binding correct, or are refused loudly.

Paths: PostgreSQL/SQLite ``on_conflict_do_update``, MariaDB ``on_duplicate_key_update``, ORM
``bulk_update_mappings``, ORM bulk UPDATE by primary key, ORM UPDATE ... WHERE pk. Each is read
back through the ORM (search included) and checked in the raw stored bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqla_models import Patient, User
from sqlalchemy.orm import Session

import fieldcrypt
from fieldcrypt.errors import QueryNotSupportedError
from fieldcrypt.place import Place
from fieldcrypt.sqlalchemy import Encrypted

SetFn = Callable[[Any], dict[str, Any]]


def upsert(engine: sa.Engine, table: Any, target: list[str], set_: SetFn) -> Any:
    """This database's upsert into ``table``: ``set_`` receives the proposed row (excluded/inserted)."""
    name = engine.dialect.name
    if name == "mysql" or name == "mariadb":
        from sqlalchemy.dialects.mysql import insert as my_insert

        my = my_insert(table)
        return my.on_duplicate_key_update(set_(my.inserted))
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table)
        return pg.on_conflict_do_update(index_elements=target, set_=set_(pg.excluded))
    from sqlalchemy.dialects.sqlite import insert as lite_insert

    lite = lite_insert(table)
    return lite.on_conflict_do_update(index_elements=target, set_=set_(lite.excluded))


def seed_user(db: sa.Engine) -> None:
    with Session(db) as session, session.begin():
        session.add(User(id=1, name="ann", ssn="111-11-1111", email="a@example.com", tax_id="T-1"))


def user_found(db: sa.Engine, **where: str) -> list[int]:
    with Session(db) as session:
        ((column, value),) = where.items()
        return [u.id for u in session.scalars(sa.select(User).where(getattr(User, column) == value))]


def test_upsert_of_the_proposed_row_moves_the_blind_index(db: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """excluded.ssn / inserted.ssn: the new value is stored encrypted and found by search; the old is not."""
    seed_user(db)
    stmt = upsert(
        db, User.__table__, ["id"], lambda new: {"ssn": new.ssn, "email": new.email, "name": new.name}
    )
    with db.begin() as conn:
        conn.execute(stmt, [{"id": 1, "name": "bob", "ssn": "222-22-2222", "email": "b@example.com"}])
    assert user_found(db, ssn="222-22-2222") == [1]
    assert user_found(db, ssn="111-11-1111") == []
    assert user_found(db, email="b@example.com") == [1]
    with Session(db) as session:
        user = session.get_one(User, 1)
        assert (user.name, user.ssn, user.tax_id) == ("bob", "222-22-2222", "T-1")
    ((ssn, bidx),) = raw_rows(db, "select ssn, ssn_bidx from users")
    assert_ciphertext(ssn, b"222-22-2222", b"222222222")
    assert bytes(bidx) == keyring.blind_index(b"222222222", Place("users", "ssn"))


def test_upsert_of_python_values_is_encrypted_and_indexed(db: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """A plain value in the UPDATE half is encrypted for its column and its blind index is added."""
    seed_user(db)
    stmt = upsert(db, User.__table__, ["id"], lambda _new: {"ssn": "333-33-3333", "tax_id": "T-9"})
    with db.begin() as conn:
        conn.execute(stmt, {"id": 1, "name": "ann", "ssn": "999-99-9999"})
    assert user_found(db, ssn="333-33-3333") == [1]
    assert user_found(db, ssn="999-99-9999") == []
    with Session(db) as session:
        assert session.get_one(User, 1).tax_id == "T-9"
    ((ssn, tax, bidx),) = raw_rows(db, "select ssn, tax_id, ssn_bidx from users")
    assert_ciphertext(ssn, b"333-33-3333")
    assert_ciphertext(tax, b"T-9")
    assert bytes(bidx) == keyring.blind_index(b"333333333", Place("users", "ssn"))


def test_upsert_that_inserts_fills_the_blind_index(db: sa.Engine) -> None:
    """With no conflict the INSERT half runs: the row is encrypted and searchable."""
    stmt = upsert(db, User.__table__, ["id"], lambda new: {"ssn": new.ssn})
    with db.begin() as conn:
        conn.execute(stmt, [{"id": 7, "name": "cy", "ssn": "444-44-4444"}])
    assert user_found(db, ssn="444-44-4444") == [7]


def test_upsert_of_row_bound_values_on_the_primary_key(db: sa.Engine) -> None:
    """Row-bound columns take the proposed row's values when the conflict is on the primary key."""
    pid = uuid.uuid4()
    with Session(db) as session, session.begin():
        session.add(Patient(id=pid, mrn="MRN-1", notes="old"))
    stmt = upsert(db, Patient.__table__, ["id"], lambda new: {"notes": new.notes, "mrn": new.mrn})
    with db.begin() as conn:
        conn.execute(stmt, [{"id": pid, "mrn": "MRN-2", "notes": "new notes"}])
    with Session(db) as session:
        patient = session.get_one(Patient, pid)
        assert (patient.mrn, patient.notes) == ("MRN-2", "new notes")
        found = session.scalars(sa.select(Patient).where(Patient.mrn == "MRN-2")).all()
        assert [p.id for p in found] == [pid]
    ((notes,),) = raw_rows(db, "select notes from patients")
    assert_ciphertext(notes, b"new notes")


@pytest.mark.parametrize(
    ("set_", "why"),
    [
        (lambda new: {"notes": "typed in"}, "cannot tell which row"),
        (lambda new: {"notes": sa.func.lower(new.notes)}, "cannot tell which row"),
        (lambda new: {"id": new.id, "notes": new.notes}, "changes the primary key"),
    ],
    ids=["python-value", "expression", "primary-key"],
)
def test_upsert_of_row_bound_values_refused_where_the_row_is_unknown(
    db: sa.Engine, set_: SetFn, why: str
) -> None:
    """Row-bound columns refuse Python values, expressions and key changes in an upsert, writing nothing."""
    pid = uuid.uuid4()
    with Session(db) as session, session.begin():
        session.add(Patient(id=pid, notes="kept"))
    with pytest.raises(QueryNotSupportedError, match=why), db.begin() as conn:
        conn.execute(upsert(db, Patient.__table__, ["id"], set_), [{"id": pid, "notes": "other"}])
    with Session(db) as session:
        assert session.get_one(Patient, pid).notes == "kept"


def test_upsert_of_row_bound_values_refused_on_another_unique_key(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """A conflict that may be on a key other than the primary key would move a value to another row: refused."""
    meta = sa.MetaData()
    badges = sa.Table(
        "badges",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.String(10), unique=True),
        sa.Column("secret", Encrypted(sa.String(20), keyring="pii", bind_row=True)),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(badges), [{"id": 1, "code": "A", "secret": "s1"}])
    stmt = upsert(engine, badges, ["code"], lambda new: {"secret": new.secret})
    with (
        pytest.raises(QueryNotSupportedError, match="make the conflict target the primary key"),
        engine.begin() as conn,
    ):
        conn.execute(stmt, [{"id": 2, "code": "A", "secret": "s2"}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(badges.c.id, badges.c.code)).all() == [(1, "A")]


@pytest.mark.parametrize(
    "set_",
    [
        lambda new: {"ssn": sa.func.upper(new.ssn)},
        lambda new: {"ssn": new.tax_id},
        lambda new: {"ssn": sa.null() + new.ssn},
    ],
    ids=["function", "another-column", "operator"],
)
def test_upsert_of_an_expression_into_an_encrypted_column_refused(db: sa.Engine, set_: SetFn) -> None:
    """SQL computed over ciphertext, or another column's ciphertext, is refused before it is sent."""
    seed_user(db)
    with pytest.raises(QueryNotSupportedError, match=r"users\.ssn"), db.begin() as conn:
        conn.execute(upsert(db, User.__table__, ["id"], set_), [{"id": 1, "name": "x", "ssn": "555-55-5555"}])
    assert user_found(db, ssn="111-11-1111") == [1]


def test_upsert_keeping_the_stored_value_is_allowed(db: sa.Engine) -> None:
    """Assigning the column to itself leaves value and index as they were."""
    seed_user(db)
    stmt = upsert(db, User.__table__, ["id"], lambda new: {"ssn": User.__table__.c.ssn, "name": new.name})
    with db.begin() as conn:
        conn.execute(stmt, [{"id": 1, "name": "zed", "ssn": "555-55-5555"}])
    assert user_found(db, ssn="111-11-1111") == [1]
    with Session(db) as session:
        assert session.get_one(User, 1).name == "zed"


def test_bulk_update_mappings_keep_index_and_row_binding(db: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """Session.bulk_update_mappings: searchable and row-bound columns are written correctly."""
    pid = uuid.uuid4()
    seed_user(db)
    with Session(db) as session, session.begin():
        session.add(Patient(id=pid, mrn="MRN-1", notes="old"))
    with Session(db) as session, session.begin():
        session.bulk_update_mappings(User, [{"id": 1, "ssn": "666-66-6666"}])  # type: ignore[arg-type]
        session.bulk_update_mappings(Patient, [{"id": pid, "mrn": "MRN-6", "notes": "six"}])  # type: ignore[arg-type]
    assert user_found(db, ssn="666-66-6666") == [1]
    with Session(db) as session:
        patient = session.scalars(sa.select(Patient).where(Patient.mrn == "MRN-6")).one()
        assert (patient.id, patient.notes) == (pid, "six")
    ((notes, mrn_bidx),) = raw_rows(db, "select notes, mrn_bidx from patients")
    assert_ciphertext(notes, b"six")
    assert bytes(mrn_bidx) == keyring.blind_index(b"MRN-6", Place("patients", "mrn"))


def test_orm_bulk_update_by_primary_key(db: sa.Engine) -> None:
    """session.execute(update(Model), [{pk, ...}, ...]) seals each value to its own row."""
    first, second = uuid.uuid4(), uuid.uuid4()
    seed_user(db)
    with Session(db) as session, session.begin():
        session.add_all([Patient(id=first, notes="a"), Patient(id=second, notes="b")])
        session.add(User(id=2, name="bo", ssn="000-00-0002"))
    with Session(db) as session, session.begin():
        session.execute(
            sa.update(Patient),
            [{"id": first, "notes": "first", "mrn": "M1"}, {"id": second, "notes": "second", "mrn": "M2"}],
        )
        session.execute(sa.update(User), [{"id": 1, "ssn": "777-77-7777"}, {"id": 2, "ssn": "888-88-8888"}])
    with Session(db) as session:
        assert session.get_one(Patient, first).notes == "first"
        assert session.get_one(Patient, second).notes == "second"
        assert session.scalars(sa.select(Patient.id).where(Patient.mrn == "M2")).all() == [second]
    assert user_found(db, ssn="888-88-8888") == [2]
    assert user_found(db, ssn="777-77-7777") == [1]
    for (notes,) in raw_rows(db, "select notes from patients"):
        assert_ciphertext(notes, b"first", b"second")


def test_orm_update_where_primary_key_seals_to_that_row(db: sa.Engine) -> None:
    """update(Model).where(Model.id == x).values(...) names one row, so row-bound values are sealed to it."""
    pid = uuid.uuid4()
    with Session(db) as session, session.begin():
        session.add(Patient(id=pid, notes="before"))
    with Session(db) as session, session.begin():
        session.execute(sa.update(Patient).where(Patient.id == pid).values(notes="after", mrn="M9"))
    with Session(db) as session:
        assert session.get_one(Patient, pid).notes == "after"
        assert session.scalars(sa.select(Patient.id).where(Patient.mrn == "M9")).all() == [pid]


def test_update_of_row_bound_values_without_the_row_refused(db: sa.Engine) -> None:
    """An UPDATE that does not name its row by primary key cannot bind row-bound values: refused."""
    pid = uuid.uuid4()
    with Session(db) as session, session.begin():
        session.add(Patient(id=pid, notes="kept"))
    with pytest.raises(QueryNotSupportedError, match="does not name one row"), Session(db) as session:
        session.execute(sa.update(Patient).where(Patient.notes.is_not(None)).values(notes="x"))
    with pytest.raises(QueryNotSupportedError, match="does not name one row"), db.begin() as conn:
        conn.execute(sa.update(Patient.__table__), {"notes": "y"})
    with Session(db) as session:
        assert session.get_one(Patient, pid).notes == "kept"
