"""Blind-index matches are verified: a planted or colliding token never returns another row."""

from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy as sa
from sqla_helpers import raw_rows
from sqla_models import Base, Patient, User
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

import fieldcrypt
from fieldcrypt import QueryNotSupportedError
from fieldcrypt.sqlalchemy import execute_verified

VICTIM, ATTACKER = "victim@example.com", "attacker@example.com"


def _seed(engine: sa.Engine) -> None:
    with Session(engine) as session:
        session.add_all(
            [
                User(id=1, name="victim", ssn="111-11-1111", email=VICTIM),
                User(id=2, name="attacker", ssn="222-22-2222", email=ATTACKER),
            ]
        )
        session.commit()


def _plant(engine: sa.Engine, column: str, from_id: int, to_id: int) -> None:
    """The attack: a database writer copies one row's blind-index token into another row."""
    token = raw_rows(engine, f"SELECT {column} FROM users WHERE id = :i", i=from_id)[0][0]
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE users SET {column} = :t WHERE id = :i"), {"t": token, "i": to_id})


def test_orm_search_drops_a_row_carrying_a_copied_token(
    db: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Attacker copies the victim's email token into their row: a search for the victim's email returns the victim only, and the drop is reported on the audit logger."""
    _seed(db)
    _plant(db, "email_bidx", 1, 2)
    assert (
        raw_rows(
            db, "SELECT count(*) FROM users WHERE email_bidx = (SELECT email_bidx FROM users WHERE id = 1)"
        )[0][0]
        == 2
    )
    with caplog.at_level(logging.WARNING, logger="fieldcrypt.audit"), Session(db) as session:
        assert [u.id for u in session.scalars(select(User).where(User.email == VICTIM))] == [1]
        assert session.scalars(select(User.id).where(User.email.in_([VICTIM]))).all() == [1]
        assert [u.id for u in session.query(User).filter(User.email == VICTIM).all()] == [1]
        assert session.execute(select(User.name).where(User.email == VICTIM, User.id > 0)).all() == [
            ("victim",)
        ]
    reports = [r.fieldcrypt for r in caplog.records if r.name == "fieldcrypt.audit"]  # type: ignore[attr-defined]
    mismatches = [f for f in reports if f["event"] == "blind_index.mismatch"]
    assert mismatches
    assert {(f["table"], f["column"], f["row"]) for f in mismatches} == {("users", "email", "2")}
    assert all(VICTIM not in r.getMessage() and ATTACKER not in r.getMessage() for r in caplog.records)


def test_limit_applies_after_verification(db: sa.Engine) -> None:
    """A planted row sorted first cannot push the victim's row out of .limit(1) / Query.first()."""
    _seed(db)
    _plant(db, "email_bidx", 1, 2)
    with Session(db) as session:
        first = session.scalars(select(User).where(User.email == VICTIM).order_by(User.id.desc()).limit(1))
        assert [u.id for u in first] == [1]
        assert session.query(User).filter(User.email == VICTIM).order_by(User.id.desc()).first().id == 1  # type: ignore[union-attr]
        session.add(User(id=3, name="namesake", email=VICTIM))  # a genuine second match
        session.commit()
        page = select(User.id).where(User.email == VICTIM).order_by(User.id.desc()).offset(1).limit(1)
        assert session.scalars(page).all() == [
            1
        ]  # rows 3, (2 dropped), 1: offset and limit count genuine rows


def test_swapped_tokens_under_unique_return_no_other_row(db: sa.Engine) -> None:
    """unique=True: the attacker swaps tokens with the victim; a search for the victim's SSN does not return the attacker."""
    _seed(db)
    tokens = {r.id: r.ssn_bidx for r in raw_rows(db, "SELECT id, ssn_bidx FROM users")}
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE users SET ssn_bidx = NULL WHERE id = 1"))
        conn.execute(sa.text("UPDATE users SET ssn_bidx = :t WHERE id = 2"), {"t": tokens[1]})
        conn.execute(sa.text("UPDATE users SET ssn_bidx = :t WHERE id = 1"), {"t": tokens[2]})
    with Session(db) as session:
        assert session.scalars(select(User.id).where(User.ssn == "111-11-1111")).all() == []
        assert session.scalars(select(User.id).where(User.ssn == "222-22-2222")).all() == []


def test_not_equal_drops_a_row_whose_value_is_the_excluded_one(db: sa.Engine) -> None:
    """!= v: the attacker gives the victim's row another token; the victim's row is still not returned for != victim."""
    _seed(db)
    _plant(db, "email_bidx", 2, 1)
    with Session(db) as session:
        assert session.scalars(select(User.id).where(User.email != VICTIM)).all() == [2]
        assert session.scalars(select(User.id).where(User.email.not_in([VICTIM]))).all() == [2]
        assert session.scalars(select(User.id).where(~(User.email == VICTIM))).all() == [2]


def test_row_bound_search_is_verified(db: sa.Engine) -> None:
    """Row-bound searchable column: a copied token is dropped (the value is opened with its row's key)."""
    ids = [uuid.uuid4(), uuid.uuid4()]
    with Session(db) as session:
        session.add_all([Patient(id=ids[0], mrn="MRN-VICTIM"), Patient(id=ids[1], mrn="MRN-ATTACKER")])
        session.commit()
    token = raw_rows(db, "SELECT mrn_bidx FROM patients")[0][0]
    with db.begin() as conn:  # both rows now carry the token of one of them
        conn.execute(sa.text("UPDATE patients SET mrn_bidx = :t"), {"t": token})
    with Session(db) as session:
        found = {
            m: session.scalars(select(Patient).where(Patient.mrn == m)).all()
            for m in ("MRN-VICTIM", "MRN-ATTACKER")
        }
    assert sum(len(rows) for rows in found.values()) == 1
    assert all(p.mrn == m for m, rows in found.items() for p in rows)


def test_core_search_is_refused_unless_verified(db: sa.Engine) -> None:
    """Core conn.execute of a blind-index search raises; execute_verified drops the planted row."""
    _seed(db)
    _plant(db, "email_bidx", 1, 2)
    table = User.__table__
    with db.connect() as conn:
        with pytest.raises(QueryNotSupportedError, match=r"users\.email: Connection\.execute cannot verify"):
            conn.execute(select(table).where(table.c.email == VICTIM))
        rows = execute_verified(conn, select(table).where(table.c.email == VICTIM)).all()
        assert [(r.id, r.email) for r in rows] == [(1, VICTIM)]
        assert list(rows[0]._mapping) == [c.name for c in table.columns]  # no added column leaks out
        ids = execute_verified(conn, select(table.c.id).where(table.c.email == VICTIM)).scalars().all()
        assert ids == [1]


UNVERIFIABLE = {
    "or": lambda: select(User.id).where(or_(User.email == VICTIM, User.id == 2)),
    "not": lambda: select(User.id).where(~and_(User.email == VICTIM, User.id == 1)),
    "count": lambda: select(func.count()).select_from(User).where(User.email == VICTIM),
    "distinct": lambda: select(User.id).where(User.email == VICTIM).distinct(),
    "subquery": lambda: select(User.id).where(User.id.in_(select(User.id).where(User.email == VICTIM))),
    "delete": lambda: delete(User).where(User.email == VICTIM),
    "update": lambda: update(User).where(User.email == VICTIM).values(name="x"),
}


@pytest.mark.parametrize("shape", sorted(UNVERIFIABLE))
def test_unverifiable_searches_are_refused(
    keyring: fieldcrypt.Keyring, sqlite_engine: sa.Engine, shape: str
) -> None:
    """A search that cannot be checked row by row (OR, NOT, aggregates, subqueries, DML) raises."""
    Base.metadata.create_all(sqlite_engine)
    _seed(sqlite_engine)
    with Session(sqlite_engine) as session, pytest.raises(QueryNotSupportedError, match="be verified"):
        session.execute(UNVERIFIABLE[shape]())
    assert raw_rows(sqlite_engine, "SELECT count(*) FROM users WHERE name = 'x'")[0][0] == 0
