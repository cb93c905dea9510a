"""Blind-index search and uniqueness, kept in step on every write path; refusals of the rest."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqla_helpers import raw_rows
from sqla_models import Everything, User
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

import fieldcrypt
from fieldcrypt import Place, QueryNotSupportedError


def _ids(engine: sa.Engine, clause: sa.ColumnElement[bool]) -> list[int]:
    with Session(engine) as session:
        return sorted(session.scalars(select(User.id).where(clause)))


def _add(engine: sa.Engine, *users: tuple[int, str | None]) -> None:
    with Session(engine) as session:
        session.add_all(User(id=i, name=f"user {i}", ssn=ssn) for i, ssn in users)
        session.commit()


def test_equality_in_and_filter_by_find_rows(db: sa.Engine) -> None:
    """==, in_, filter_by, != and not_in go through the blind index and find the right rows."""
    _add(db, (1, "123-45-6789"), (2, "987-65-4321"), (3, None))
    assert _ids(db, User.ssn == "123-45-6789") == [1]
    assert _ids(db, User.ssn.in_(["987-65-4321", "000-00-0000", "123-45-6789"])) == [1, 2]
    assert _ids(db, User.ssn != "123-45-6789") == [2]
    assert _ids(db, User.ssn.not_in(["123-45-6789"])) == [2]
    assert _ids(db, User.ssn.is_(None)) == [3]
    assert _ids(db, User.ssn == None) == [3]  # noqa: E711 - the SQL IS NULL spelling is the point
    with Session(db) as session:
        assert session.scalars(select(User).filter_by(ssn="987-65-4321")).one().id == 2


def test_normaliser_applies_to_writes_and_queries(db: sa.Engine) -> None:
    """The SSN normaliser (digits only) makes "123 45 6789" find "123-45-6789"; the value is kept."""
    _add(db, (1, "123-45-6789"))
    assert _ids(db, User.ssn == "123456789") == [1]
    assert _ids(db, User.ssn == "123 45 6789") == [1]
    with Session(db) as session:
        assert session.get(User, 1).ssn == "123-45-6789"  # type: ignore[union-attr]


def test_index_column_holds_the_documented_token(db: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """ssn_bidx is keyring.blind_index(codec bytes of the normalised value, Place(users, ssn))."""
    _add(db, (1, "123-45-6789"))
    stored = raw_rows(db, "SELECT ssn_bidx FROM users")[0].ssn_bidx
    assert bytes(stored) == keyring.blind_index(b"123456789", Place("users", "ssn"))
    assert len(bytes(stored)) == keyring.blind_index_bytes


def test_unique_index_rejects_a_duplicate_value(db: sa.Engine) -> None:
    """unique=True puts a unique index on ssn_bidx: a second row with the same SSN is refused."""
    _add(db, (1, "123-45-6789"))
    with pytest.raises(sa.exc.IntegrityError):
        _add(db, (2, "123456789"))  # the same SSN after normalising
    assert _ids(db, User.id > 0) == [1]


def test_every_insert_path_maintains_the_index(db: sa.Engine) -> None:
    """ORM add_all, Core executemany, inline values and bulk_insert_mappings all fill ssn_bidx."""
    table = User.__table__
    _add(db, *[(i, f"100-00-{i:04d}") for i in range(1, 6)])  # ORM batch (insertmanyvalues)
    with db.begin() as conn:
        conn.execute(insert(table), [{"id": i, "name": "c", "ssn": f"200-00-{i:04d}"} for i in (11, 12)])
        conn.execute(insert(table).values(id=13, name="inline", ssn="300-00-0013"))
        conn.execute(insert(table).values([{"id": 14, "name": "m", "ssn": "400-00-0014"}]))
    with Session(db) as session:
        session.bulk_insert_mappings(User, [{"id": 21, "name": "bulk", "ssn": "500-00-0021"}])
        session.commit()
    for i, ssn in [
        (3, "100-00-0003"),
        (12, "200-00-0012"),
        (13, "300-00-0013"),
        (14, "400-00-0014"),
        (21, "500-00-0021"),
    ]:
        assert _ids(db, User.ssn == ssn) == [i]
    assert raw_rows(db, "SELECT count(*) AS n FROM users WHERE ssn_bidx IS NULL")[0].n == 0


def test_every_update_path_maintains_the_index(db: sa.Engine) -> None:
    """ORM attribute change, Core update with params or .values(), ORM bulk update keep it in step."""
    _add(db, (1, "111-11-1111"), (2, "222-22-2222"), (3, "333-33-3333"), (4, "444-44-4444"))
    table = User.__table__
    with Session(db) as session:
        session.get(User, 1).ssn = "111-00-0001"  # type: ignore[union-attr]
        session.get(User, 2).name = "renamed only"  # type: ignore[union-attr]
        session.commit()
    with db.begin() as conn:
        conn.execute(update(table).where(table.c.id == 3), {"ssn": "333-00-0003"})
        conn.execute(update(table).where(table.c.id == 4).values(ssn="444-00-0004"))
    with Session(db) as session:
        session.execute(update(User).where(User.id == 2).values(ssn="222-00-0002"))
        session.commit()
    assert _ids(db, User.ssn == "111-00-0001") == [1]
    assert _ids(db, User.ssn == "222-00-0002") == [2]
    assert _ids(db, User.ssn == "333-00-0003") == [3]
    assert _ids(db, User.ssn == "444-00-0004") == [4]
    assert _ids(db, User.ssn.in_(["111-11-1111", "222-22-2222", "333-33-3333", "444-44-4444"])) == []
    with Session(db) as session:
        session.get(User, 1).ssn = None  # type: ignore[union-attr]
        session.commit()
    assert raw_rows(db, "SELECT ssn, ssn_bidx FROM users WHERE id = 1")[0] == (None, None)


def test_update_from_a_renamed_bind_parameter_is_refused(db: sa.Engine) -> None:
    """Setting ssn from a bindparam of another name would leave a stale index: refused, row unchanged."""
    _add(db, (1, "111-11-1111"))
    table = User.__table__
    stmt = update(table).where(table.c.id == bindparam("b_id")).values(ssn=bindparam("new_ssn"))
    with db.begin() as conn, pytest.raises(QueryNotSupportedError, match=r"users\.ssn is set from a bound"):
        conn.execute(stmt, [{"b_id": 1, "new_ssn": "999-99-9999"}])
    assert _ids(db, User.ssn == "111-11-1111") == [1]


def test_text_storage_column_is_searchable(db: sa.Engine) -> None:
    """A searchable column with text storage (base64) is found through its index too."""
    with Session(db) as session:
        session.add(User(id=1, name="a", email="a@example.com"))
        session.commit()
    assert _ids(db, User.email == "a@example.com") == [1]
    assert isinstance(raw_rows(db, "SELECT email FROM users")[0].email, str)


@pytest.mark.parametrize(
    ("build", "operator"),
    [
        (lambda: User.ssn.like("123%"), "like"),
        (lambda: User.ssn.ilike("123%"), "ilike"),
        (lambda: User.ssn.startswith("123"), "startswith"),
        (lambda: User.ssn > "1", "gt"),
        (lambda: User.ssn.between("1", "2"), "between"),
        (lambda: User.ssn.desc(), "desc"),
        (lambda: User.ssn + "x", "add"),
        (lambda: User.ssn.contains("5"), "contains"),
    ],
)
def test_operators_that_cannot_work_raise(keyring: fieldcrypt.Keyring, build: object, operator: str) -> None:
    """LIKE, ranges, ordering, arithmetic on an encrypted column raise, naming the column."""
    with pytest.raises(QueryNotSupportedError, match=rf"^users\.ssn is encrypted: {operator} cannot work"):
        build()  # type: ignore[operator]


def test_equality_without_an_index_raises(keyring: fieldcrypt.Keyring) -> None:
    """== and in_ on an encrypted column with no blind index raise instead of matching nothing."""
    message = r"^users\.tax_id is encrypted without a blind index, so eq cannot match"
    with pytest.raises(QueryNotSupportedError, match=message):
        _ = User.tax_id == "123-45-6789"
    with pytest.raises(QueryNotSupportedError, match=r"everything\.d is encrypted without a blind index"):
        Everything.d.in_([dt.date(2000, 1, 1)])


def test_order_by_and_group_by_are_refused_at_execution(db: sa.Engine) -> None:
    """order_by(User.ssn) / group_by(User.ssn) name no operator, so execution refuses them."""
    with Session(db) as session:
        with pytest.raises(QueryNotSupportedError, match=r"users\.ssn is encrypted: ordering or grouping"):
            session.scalars(select(User).order_by(User.ssn)).all()
        with pytest.raises(QueryNotSupportedError, match=r"users\.ssn is encrypted: ordering or grouping"):
            session.execute(select(User.ssn, sa.func.count()).group_by(User.ssn)).all()


def test_comparing_with_a_sql_expression_is_refused(keyring: fieldcrypt.Keyring) -> None:
    """The index is computed in the application: a bindparam or subquery operand is refused."""
    with pytest.raises(QueryNotSupportedError, match="compare an encrypted column with Python values"):
        _ = User.ssn == bindparam("x")
    with pytest.raises(QueryNotSupportedError, match="compare an encrypted column with Python values"):
        User.ssn.in_(select(User.name))


def test_literal_rendering_refuses_encrypted_values(keyring: fieldcrypt.Keyring) -> None:
    """literal_binds (offline SQL) refuses to print a value of an encrypted column."""
    stmt = insert(User).values(id=1, name="a", tax_id="123-45-6789")
    with pytest.raises(QueryNotSupportedError) as caught:
        stmt.compile(compile_kwargs={"literal_binds": True})
    assert str(caught.value).startswith(
        "refusing to render a value of encrypted column users.tax_id as a SQL literal"
    )
    assert "123-45-6789" not in str(caught.value)


def test_query_before_any_write_finds_nothing_and_creates_no_key(
    db: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """A search with no blind-index key yet matches nothing and writes nothing to the key store."""
    assert _ids(db, User.ssn == "123-45-6789") == []
    assert keyring.records(fieldcrypt.Purpose.BLIND_INDEX) == []
