"""Property tests: arbitrary values round-trip exactly; processors resolve the keyring once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqla_models import Base, Everything
from sqlalchemy import select

import fieldcrypt
from fieldcrypt import registry
from fieldcrypt.testing import local_keyring


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """One SQLite file for the whole module (hypothesis runs many examples per test)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('props') / 'p.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _round_trip(engine: sa.Engine, column: str, value: Any) -> Any:
    table = Everything.__table__
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(sa.insert(table), [{"id": 1, column: value}])
        return conn.execute(select(table.c[column])).scalar_one()


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    text=st.text(max_size=40),
    number=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    decimal=st.decimals(allow_nan=False, allow_infinity=False),
    moment=st.datetimes(timezones=st.none() | st.timezones()),
)
# An ambiguous local time (a DST change): the case that made the old `==` assertion fail at random.
@example(
    text="",
    number=0,
    decimal=Decimal(0),
    moment=dt.datetime(2000, 2, 26, 23, tzinfo=ZoneInfo("America/Noronha")),
)
@example(
    text="",
    number=0,
    decimal=Decimal(0),
    moment=dt.datetime(2000, 2, 26, 23, fold=1, tzinfo=ZoneInfo("America/Noronha")),
)
def test_values_round_trip_exactly(
    sqlite_db: sa.Engine, text: str, number: int, decimal: Decimal, moment: dt.datetime
) -> None:
    """Any str, int, Decimal (with its exponent) and datetime (naive or aware) comes back identical, or is refused (naive fold=1)."""
    local_keyring("pii")
    assert _round_trip(sqlite_db, "t", text) == text
    assert _round_trip(sqlite_db, "bi", number) == number
    got = _round_trip(sqlite_db, "n", decimal)
    assert (type(got), str(got)) == (Decimal, str(decimal))
    if moment.tzinfo is None and moment.fold:  # would read back as the first of two wall times
        with pytest.raises(sa.exc.StatementError, match="fold=1"):
            _round_trip(sqlite_db, "dtz", moment)
        return
    got = _round_trip(sqlite_db, "dtz", moment)
    # Same wall clock and same offset, hence the same instant. Not `got == moment`: under PEP 495 an
    # ambiguous or missing local time (a DST change) never compares equal across time zones.
    assert got.replace(tzinfo=None) == moment.replace(tzinfo=None)
    assert got.utcoffset() == moment.utcoffset()
    assert (got.tzinfo is None) == (moment.tzinfo is None)


def test_processors_resolve_the_keyring_once(
    monkeypatch: pytest.MonkeyPatch, sqlite_engine: sa.Engine
) -> None:
    """Writing and reading 500 values looks the keyring up once per processor, not once per value."""
    local_keyring("pii")
    calls: list[str] = []
    real = registry.get_keyring

    def counting(name: str) -> fieldcrypt.Keyring:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(registry, "get_keyring", counting)  # what registry.follow resolves with
    Base.metadata.create_all(sqlite_engine)
    table = Everything.__table__
    with sqlite_engine.begin() as conn:
        conn.execute(sa.insert(table), [{"id": i, "s": f"v{i}"} for i in range(500)])
        assert len(conn.execute(select(table.c.s)).scalars().all()) == 500
    assert calls == ["pii", "pii"]  # the bind processor and the result processor
