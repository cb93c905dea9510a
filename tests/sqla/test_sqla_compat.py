"""Each SQLAlchemy internal fieldcrypt reads works on the installed version, or fails loudly."""

from __future__ import annotations

from importlib import metadata

import pytest
import sqlalchemy as sa
from sqla_models import User
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from fieldcrypt import ConfigurationError, QueryNotSupportedError
from fieldcrypt.sqlalchemy import _compat

pytestmark = pytest.mark.compat
TABLE = User.__table__


def test_update_targets_reads_values_and_ordered_values() -> None:
    """The SET targets of .values() and .ordered_values() are both seen (2.0 keeps them apart)."""
    by_values = update(TABLE).values(ssn="1", name="n")
    ordered = update(TABLE).ordered_values((TABLE.c.ssn, "1"), (TABLE.c.name, "n"))
    for statement in (by_values, ordered):
        assert {getattr(t, "key", t) for t in _compat.update_targets(statement)} == {"ssn", "name"}
    assert _compat.update_targets(update(TABLE)) == []


def test_ordered_values_update_of_a_searchable_column_is_refused(db: sa.Engine) -> None:
    """update().ordered_values(ssn=...) cannot take the index column: refused, the row unchanged."""
    with Session(db) as session:
        session.add(User(id=1, name="a", ssn="111-11-1111"))
        session.commit()
    statement = update(TABLE).where(TABLE.c.id == 1).ordered_values((TABLE.c.ssn, "222-22-2222"))
    with (
        db.begin() as conn,
        pytest.raises(QueryNotSupportedError, match=r"users is updated with ordered_values"),
    ):
        conn.execute(statement)
    with Session(db) as session:
        assert session.scalars(select(User.id).where(User.ssn == "111-11-1111")).all() == [1]


def test_ordering_clauses_reads_order_by_and_group_by() -> None:
    """ORDER BY and GROUP BY clauses of a select are both returned."""
    statement = select(TABLE.c.name).order_by(TABLE.c.id).group_by(TABLE.c.name)
    assert [c.key for c in _compat.ordering_clauses(statement)] == ["id", "name"]


def test_hides_rows_and_limit_and_offset() -> None:
    """GROUP BY, HAVING and DISTINCT are each seen; LIMIT and OFFSET read back as integers."""
    plain = select(TABLE.c.id)
    assert _compat.hides_rows(plain) is False
    assert _compat.limit_and_offset(plain) == (None, None)
    for hiding in (plain.group_by(TABLE.c.id), plain.having(TABLE.c.id > 1), plain.distinct()):
        assert _compat.hides_rows(hiding) is True
    assert _compat.limit_and_offset(plain.limit(3).offset(2)) == (3, 2)


def test_legacy_query_search_reads_and_sets_the_tuple_flags(db: sa.Engine) -> None:
    """A verified legacy Query search yields instances, and rows under only_return_tuples (both flags read/set)."""
    with Session(db) as session:
        session.add(User(id=1, name="a", ssn="111-11-1111"))
        session.commit()
        found = session.query(User).filter(User.ssn == "111-11-1111").all()
        assert [type(user) for user in found] == [User]
        (row,) = session.query(User).filter(User.ssn == "111-11-1111").only_return_tuples(True).all()
        assert type(row) is not User
        assert row[0] is found[0]


def test_index_column_precedes_its_source_and_survives_a_table_copy() -> None:
    """The blind-index column sits just before its source, so a column-by-column copy reuses it."""
    names = [c.name for c in TABLE.columns]
    assert names.index("ssn_bidx") == names.index("ssn") - 1
    copy = TABLE.to_metadata(sa.MetaData())
    assert [c.name for c in copy.columns] == names


def test_a_missing_internal_names_the_installed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Update._values (a future SQLAlchemy), the read raises naming SQLAlchemy's version."""
    owner = next(cls for cls in Update.__mro__ if "_values" in vars(cls))
    monkeypatch.delattr(owner, "_values")
    with pytest.raises(ConfigurationError) as caught:
        _compat.update_targets(update(TABLE))
    version = metadata.version("SQLAlchemy")
    assert str(caught.value).startswith(f"SQLAlchemy {version} has no Update._values, which fieldcrypt reads")
