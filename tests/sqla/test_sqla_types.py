"""Every supported type round-trips through an encrypted column, and only ciphertext is stored."""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqla_models import Color, Everything
from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldcrypt import format as fmt

EAST = dt.timezone(dt.timedelta(hours=5, minutes=30))
WEST = dt.timezone(dt.timedelta(hours=-8))

# (column, edge values); each value must come back equal and of exactly the same type.
CASES: dict[str, list[Any]] = {
    "s": ["", "123-45-6789", "x" * 40],
    "u": ["Zoë 🙂 漢字", "\u0000nul"],
    "t": ["", "long " * 2000],
    "i": [0, -1, 2**31 - 1, -(2**31)],
    "bi": [2**63 - 1, -(2**63)],
    "si": [0, -32768, 32767],
    "n": [
        Decimal("0"),
        Decimal("1.10"),
        Decimal("-123456789012345678901234567890.123456789"),
        Decimal("1E+30"),
    ],
    "f": [0.0, -0.0, 1.5e-300, -1.7976931348623157e308, 0.1],
    "b": [True, False],
    "d": [dt.date.min, dt.date.max, dt.date(2024, 2, 29)],
    "dtn": [dt.datetime.min, dt.datetime.max, dt.datetime(2024, 1, 2, 3, 4, 5, 678901)],
    "dtz": [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=EAST), dt.datetime(1999, 12, 31, 23, 59, tzinfo=WEST)],
    "tm": [dt.time(0, 0), dt.time(23, 59, 59, 999999), dt.time(12, 0, tzinfo=EAST)],
    "iv": [dt.timedelta(0), dt.timedelta(days=-1, microseconds=1), dt.timedelta(days=999999999)],
    "uu": [uuid.UUID(int=0), uuid.uuid4()],
    "en": [Color.RED, Color.ULTRAVIOLET],
    "js": [{"a": [1, 2, {"b": None, "c": "é"}], "n": 1.5}, [], "text", 0, True],
    "lb": [b"", bytes(range(256)), os.urandom(1 << 20)],
    "tx": ["", "text storage ✓"],
}


def _rows() -> list[tuple[int, str, Any]]:
    rows, next_id = [], 1
    for column, values in CASES.items():
        for value in values:
            rows.append((next_id, column, value))
            next_id += 1
    return rows


def _same(got: Any, want: Any) -> bool:
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return got == want and math.copysign(1, got) == math.copysign(1, want)
    if isinstance(want, Decimal):
        return str(got) == str(want)  # the scale too: Decimal("1.10") stays "1.10"
    if isinstance(want, dt.datetime | dt.time):
        return (
            got == want
            and got.utcoffset() == want.utcoffset()
            and (got.tzinfo is None) == (want.tzinfo is None)
        )
    return bool(got == want)


def test_every_type_round_trips_through_the_orm(db: sa.Engine) -> None:
    """Each value of each type comes back equal and of exactly the Python type that went in."""
    rows = _rows()
    with Session(db) as session:
        session.add_all(Everything(id=i, **{col: value}) for i, col, value in rows)
        session.commit()
    with Session(db) as session:
        loaded = {e.id: e for e in session.scalars(select(Everything))}
    for i, col, value in rows:
        got = getattr(loaded[i], col)
        assert _same(got, value), f"{col}: {value!r} came back as {got!r}"
        others = [c for c in CASES if c != col]
        assert all(getattr(loaded[i], c) is None for c in others)


def test_database_holds_only_v1_ciphertext(db: sa.Engine) -> None:
    """Plain SQL sees format v1 ciphertext (binary, or base64 for text storage) and no plaintext."""
    values = {"s": "123-45-6789", "u": "Zoë Ünïcode", "i": 987654321, "js": {"secret": "diagnosis"}}
    with Session(db) as session:
        session.add(Everything(id=1, tx="plain text SSN 123", **values))
        session.commit()
    row = raw_rows(db, "SELECT s, u, i, js, tx, d FROM everything WHERE id = 1")[0]
    assert_ciphertext(row.s, b"123-45-6789")
    assert_ciphertext(row.u, "Zoë Ünïcode".encode())
    assert_ciphertext(row.i, b"987654321")
    assert_ciphertext(row.js, b"diagnosis")
    assert isinstance(row.tx, str)
    assert_ciphertext(row.tx, b"plain text")
    assert row.d is None  # None stays NULL: no ciphertext of "nothing"


def test_core_insert_select_round_trip(db: sa.Engine) -> None:
    """Core insert (executemany) and Core select use the same processors as the ORM."""
    table = Everything.__table__
    with db.begin() as conn:
        conn.execute(
            sa.insert(table), [{"id": n, "s": f"value {n}", "n": Decimal(f"{n}.50")} for n in range(5)]
        )
    with db.connect() as conn:
        got = conn.execute(select(table.c.id, table.c.s, table.c.n).order_by(table.c.id)).all()
    assert [(r.id, r.s, r.n) for r in got] == [(n, f"value {n}", Decimal(f"{n}.50")) for n in range(5)]


def test_wrong_python_type_is_refused_and_nothing_written(db: sa.Engine) -> None:
    """A value of the wrong type raises a clear error naming the column; the row is not stored."""
    with Session(db) as session:
        session.add(Everything(id=1, i="12"))  # type: ignore[arg-type]
        with pytest.raises(sa.exc.StatementError, match=r"everything\.i: expected int, got str"):
            session.commit()
    assert raw_rows(db, "SELECT id FROM everything") == []


def test_tampered_value_raises_opaque_error(db: sa.Engine) -> None:
    """A flipped byte in the stored value raises DecryptionError naming table and column, no garbage."""
    from fieldcrypt import DecryptionError

    with Session(db) as session:
        session.add(Everything(id=1, s="secret"))
        session.commit()
    blob = bytearray(raw_rows(db, "SELECT s FROM everything")[0].s)
    blob[-1] ^= 1
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE everything SET s = :b WHERE id = 1"), {"b": bytes(blob)})
    with Session(db) as session, pytest.raises(DecryptionError, match=r"^cannot decrypt everything\.s$"):
        session.scalars(select(Everything)).one()


def test_stored_size_is_value_plus_v1_overhead(db: sa.Engine) -> None:
    """An 11-character SSN is stored in 60 bytes (v1 overhead 49), 80 base64 characters as text."""
    with Session(db) as session:
        session.add(Everything(id=1, s="123-45-6789", tx="123-45-6789"))
        session.commit()
    row = raw_rows(db, "SELECT s, tx FROM everything")[0]
    assert len(bytes(row.s)) == 11 + fmt.OVERHEAD == 60
    assert len(row.tx) == 80


def test_offsets_with_seconds_and_microseconds_round_trip(db: sa.Engine) -> None:
    """A datetime and a time whose UTC offset has seconds and microseconds (historic zones) fit and round-trip, strict MariaDB included."""
    paris_1850 = dt.timezone(dt.timedelta(minutes=9, seconds=21))
    widest = dt.timezone(-dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999999))
    born = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=widest)
    at = dt.time(23, 59, 59, 999999, tzinfo=widest)
    with Session(db) as session:
        session.add(Everything(id=1, dtz=born, tm=at))
        session.add(Everything(id=2, dtz=dt.datetime(1850, 3, 1, 12, tzinfo=paris_1850)))
        session.commit()
    with Session(db) as session:
        one, two = session.get(Everything, 1), session.get(Everything, 2)
        assert one is not None
        assert two is not None
        assert (one.dtz, one.dtz.utcoffset(), one.tm, one.tm.utcoffset()) == (
            born,
            born.utcoffset(),
            at,
            at.utcoffset(),
        )
        assert two.dtz is not None
        assert two.dtz.utcoffset() == dt.timedelta(minutes=9, seconds=21)


@pytest.mark.parametrize("bind_row", [False, True])
def test_text_in_a_binary_column_is_a_decryption_error(sqlite_engine: sa.Engine, bind_row: bool) -> None:
    """A str where a binary ciphertext belongs (SQLite keeps any type) raises DecryptionError, not TypeError."""
    from fieldcrypt import DecryptionError
    from fieldcrypt.sqlalchemy import Encrypted

    table = sa.Table(
        "legacy",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="pii", bind_row=bind_row)),
    )
    table.create(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO legacy (id, ssn) VALUES (1, '123-45-6789')"))
    with sqlite_engine.connect() as conn, pytest.raises(DecryptionError, match=r"cannot decrypt legacy\.ssn"):
        conn.execute(select(table.c.ssn)).all()
