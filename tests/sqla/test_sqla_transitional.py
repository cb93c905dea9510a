"""``Encrypted(..., transitional=True)``: the application keeps working through the ORM and Core
while ``encrypt_column`` adopts a plaintext column, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import adoption, rotation
from fieldcrypt.rotation import schema, transitional
from fieldcrypt.rotation.spec import ColumnSpec, Storage
from fieldcrypt.sqlalchemy import Encrypted, column_spec
from fieldcrypt.storage.sql import index_column_type

TABLE = "adopt_users"
COLUMNS = {"ssn": Storage.BINARY, "age": Storage.BINARY, "note": Storage.TEXT}


class Transitional(DeclarativeBase):
    pass


class AppUser(Transitional):
    """The application during the move."""

    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(
        Encrypted(sa.String(11), keyring="pii", searchable=True, transitional=True)
    )
    age: Mapped[int | None] = mapped_column(Encrypted(sa.Integer, keyring="pii", transitional=True))
    note: Mapped[str | None] = mapped_column(
        Encrypted(sa.String(40), keyring="pii", storage="text", transitional=True)
    )


class Adopted(DeclarativeBase):
    pass


class PlainUser(Adopted):
    """The application once the move is done: the plain encrypted types."""

    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(Encrypted(sa.String(11), keyring="pii", searchable=True))
    age: Mapped[int | None] = mapped_column(Encrypted(sa.Integer, keyring="pii"))
    note: Mapped[str | None] = mapped_column(Encrypted(sa.String(40), keyring="pii", storage="text"))


Row = tuple[str | None, int | None, str | None]


def value(i: int) -> Row:
    return (f"{i:03d}-45-{i:04d}", 30 + i, f"note number {i}")


@pytest.fixture
def table(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> dict[int, Row]:
    """The pre-adoption table (plaintext rows 1-6 and an all-NULL row 7), widened in place."""
    sa.Table(
        TABLE,
        md := sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", sa.String(11)),
        sa.Column("ssn_bidx", index_column_type()),
        sa.Column("age", sa.Integer),
        sa.Column("note", sa.String(40)),
    )
    md.create_all(engine)
    rows: dict[int, Row] = {i: value(i) for i in range(1, 7)}
    rows[7] = (None, None, None)
    with engine.begin() as conn:
        conn.execute(
            md.tables[TABLE].insert(),
            [{"id": i, "ssn": s, "age": a, "note": n} for i, (s, a, n) in rows.items()],
        )
        for column, storage in COLUMNS.items():
            schema.widen(conn, TABLE, column, storage)
    return rows


def spec(column: str) -> ColumnSpec:
    """The engine's spec, read from the application's own declaration."""
    return column_spec(TABLE, column, Transitional.metadata)


def encrypt(engine: sa.Engine, segment: str = "0/1", **options: Any) -> None:
    for column in COLUMNS:
        report = rotation.encrypt_column(engine, spec(column), segment=segment, **options)
        assert report.complete


def app_rows(engine: sa.Engine, model: type[AppUser] | type[PlainUser] = AppUser) -> dict[int, Row]:
    with Session(engine) as session:
        users: list[Any] = list(session.scalars(sa.select(model)))
        return {u.id: (u.ssn, u.age, u.note) for u in users}


def stored(engine: sa.Engine) -> dict[int, dict[str, Any]]:
    rows = raw_rows(engine, f"SELECT id, ssn, age, note FROM {TABLE} ORDER BY id")
    return {r[0]: {"ssn": r[1], "age": r[2], "note": r[3]} for r in rows}


def is_ciphertext(column: str, value: Any) -> bool:
    return adoption.ciphertext_in(value, text=COLUMNS[column] is Storage.TEXT) is not None


def test_reads_a_half_adopted_table(engine: sa.Engine, table: dict[int, Row]) -> None:
    """Rows the engine encrypted and rows still plaintext read alike, through the ORM and Core."""
    encrypt(engine, segment="0/2")  # even ids only
    for i, columns in stored(engine).items():
        for column, v in columns.items():
            assert v is None or is_ciphertext(column, v) == (i % 2 == 0), (i, column)
    assert app_rows(engine) == table
    with engine.connect() as conn:
        core = {r.id: (r.ssn, r.age, r.note) for r in conn.execute(sa.select(AppUser.__table__))}
    assert core == table
    assert all(type(core[i][1]) is int for i in range(1, 7))
    for i, columns in stored(engine).items():  # raw-SQL readers apply the very same rule
        assert tuple(transitional.read(spec(c), v) for c, v in columns.items()) == table[i]


def test_writes_are_always_encrypted(engine: sa.Engine, table: dict[int, Row]) -> None:
    """A new row and an update of a plaintext row are stored as ciphertext, with a blind index."""
    encrypt(engine, segment="0/2")
    with Session(engine) as session, session.begin():
        session.add(AppUser(id=8, ssn="888-88-8888", age=88, note="new"))
        session.get_one(AppUser, 1).ssn = "111-11-1111"
    raw = stored(engine)
    assert_ciphertext(raw[8]["ssn"], b"888-88-8888")
    assert_ciphertext(raw[8]["age"], b"88")
    assert_ciphertext(raw[8]["note"], b"new")
    assert_ciphertext(raw[1]["ssn"], b"111-11-1111")
    assert not is_ciphertext("age", raw[1]["age"])  # untouched columns stay as they were
    bidx = raw_rows(engine, f"SELECT id FROM {TABLE} WHERE ssn_bidx IS NOT NULL ORDER BY id")
    assert [r[0] for r in bidx] == [1, 8]
    assert app_rows(engine)[1] == ("111-11-1111", 31, "note number 1")


def test_the_app_keeps_working_while_encrypt_column_runs(
    engine: sa.Engine, table: dict[int, Row], keyring: fieldcrypt.Keyring
) -> None:
    """Between every batch the app reads everything and writes; afterwards only ciphertext is stored."""
    expected = dict(table)
    batches = [0]

    def app_turn(report: rotation.Report) -> None:
        assert app_rows(engine) == expected
        batches[0] += 1
        new_id, ahead = 100 + batches[0], 6 - (batches[0] % 3)
        with Session(engine) as session, session.begin():
            if batches[0] <= 6:  # only a few: an app inserting after every batch keeps the walk going
                session.add(AppUser(id=new_id, ssn=f"{new_id:03d}-00-0000", age=new_id, note=f"n{new_id}"))
                expected[new_id] = (f"{new_id:03d}-00-0000", new_id, f"n{new_id}")
            session.get_one(AppUser, ahead).note = f"edited in batch {batches[0]}"
        expected[ahead] = (*expected[ahead][:2], f"edited in batch {batches[0]}")

    encrypt(engine, batch_size=2, progress=app_turn)
    report = rotation.reindex_column(engine, spec("ssn"))
    assert report.complete
    assert batches[0] >= 12  # three columns, at least four batches each
    assert app_rows(engine, PlainUser) == expected
    for i, columns in stored(engine).items():
        for column, v in columns.items():
            assert (v is None) == (expected[i][0] is None), (i, column)
            assert v is None or is_ciphertext(column, v), (i, column)
    for column in COLUMNS:
        counts = rotation.status(engine, spec(column))
        assert (counts.plaintext, counts.null) == (0, 1)
    with Session(engine) as session:
        found = session.scalars(
            sa.select(PlainUser.id).where(PlainUser.ssn.in_(["002-45-0002", "101-00-0000"]))
        )
        assert sorted(found) == [2, 101]


@pytest.mark.parametrize(
    ("column", "damage"),
    [
        ("ssn", lambda v: v[:-1] + bytes([v[-1] ^ 1])),  # flipped tag bit
        ("ssn", lambda v: v[:30]),  # truncated below the v1 size, still starting with 0x01
        ("age", lambda v: v[:40] + bytes([v[40] ^ 0x80]) + v[41:]),
        ("note", lambda v: v[:10] + ("A" if v[10] != "A" else "B") + v[11:]),  # base64 text
    ],
)
def test_a_tampered_ciphertext_still_raises(
    engine: sa.Engine, table: dict[int, Row], column: str, damage: Any
) -> None:
    """A damaged ciphertext raises the opaque DecryptionError; it is never read as plaintext."""
    encrypt(engine, segment="0/2")
    original = stored(engine)[2][column]
    if isinstance(original, memoryview):
        original = bytes(original)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {TABLE} SET {column} = :v WHERE id = 2"), {"v": damage(original)})
    with pytest.raises(fieldcrypt.DecryptionError, match=rf"^cannot decrypt {TABLE}\.{column}$"):
        app_rows(engine)
    with pytest.raises(fieldcrypt.DecryptionError, match=rf"^cannot decrypt {TABLE}\.{column}$"):
        transitional.read(spec(column), stored(engine)[2][column])
    with Session(engine) as session:
        assert session.get_one(AppUser, 3).ssn == "003-45-0003"  # other rows still read


def test_equality_is_refused_during_the_move(engine: sa.Engine, table: dict[int, Row]) -> None:
    """``==`` would miss rows without an index token, so it raises until the move is done."""
    with pytest.raises(
        fieldcrypt.QueryNotSupportedError,
        match=(
            r"^adopt_users\.ssn is being adopted \(transitional=True\): rows still in plaintext have "
            r"no blind-index token, so eq would silently miss them; query by another column until "
            r"encrypt-column and reindex have finished, then drop transitional=True$"
        ),
    ):
        sa.select(AppUser).where(AppUser.ssn == "001-45-0001")
    assert app_rows(engine)[1] == table[1]


def test_the_option_is_cached_and_rendered() -> None:
    """``transitional`` is part of the cache key, shows in the repr, and leaves the column type unchanged."""
    assert (
        Encrypted(sa.String(11), keyring="pii", transitional=True)._static_cache_key
        != Encrypted(sa.String(11), keyring="pii")._static_cache_key
    )
    transitional = Encrypted(sa.String(11), keyring="pii", transitional=True)
    plain = Encrypted(sa.String(11), keyring="pii")
    assert repr(transitional) == "Encrypted(String(length=11), keyring='pii', transitional=True)"
    assert repr(plain) == "Encrypted(String(length=11), keyring='pii')"
    for dialect in (postgresql.dialect(), mysql.dialect(), sqlite.dialect()):  # type: ignore[no-untyped-call]
        column_type = transitional.bound_to(TABLE, "ssn").dialect_impl(dialect)
        assert str(column_type.compile(dialect)) == str(plain.dialect_impl(dialect).compile(dialect))


def test_the_engine_lists_a_truncated_ciphertext_instead_of_encrypting_it(
    sqlite_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """encrypt_column never wraps a damaged ciphertext as if it were plaintext: it lists the row."""
    blob = keyring.encrypt(b"123-45-6789", fieldcrypt.Place(TABLE, "ssn"))
    md = sa.MetaData()
    t = sa.Table(TABLE, md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("ssn", sa.LargeBinary))
    md.create_all(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.execute(t.insert(), [{"id": 1, "ssn": blob[:30]}, {"id": 2, "ssn": b"222-22-2222"}])
    report = rotation.encrypt_column(sqlite_engine, ColumnSpec(TABLE, "ssn", keyring="pii", codec="text"))
    assert (report.written, report.failed) == (1, 1)
    assert report.failures == [("1", "cannot decrypt value")]
    assert stored_ssn(sqlite_engine) == {1: blob[:30], 2: stored_ssn(sqlite_engine)[2]}
    assert is_ciphertext("ssn", stored_ssn(sqlite_engine)[2])


def stored_ssn(engine: sa.Engine) -> dict[int, Any]:
    return {r[0]: r[1] for r in raw_rows(engine, f"SELECT id, ssn FROM {TABLE} ORDER BY id")}


def test_before_widening_reads_work_and_writes_fail_loudly(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Deployed before the column is widened: plaintext reads; a write errors (PG, MariaDB) and stores nothing."""
    md = sa.MetaData()
    t = sa.Table(
        TABLE,
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", sa.String(11)),
        sa.Column("ssn_bidx", index_column_type()),
        sa.Column("age", sa.Integer),
        sa.Column("note", sa.String(40)),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": 1, "ssn": "001-45-0001", "age": 31, "note": "one"}])
    assert app_rows(engine) == {1: ("001-45-0001", 31, "one")}
    write = AppUser(id=2, ssn="002-45-0002", age=32, note="two")
    if engine.dialect.name == "sqlite":  # SQLite stores any value in any column: nothing to widen
        with Session(engine) as session, session.begin():
            session.add(write)
        assert_ciphertext(stored(engine)[2]["ssn"], b"002-45-0002")
        return
    with pytest.raises(sa.exc.DBAPIError), Session(engine) as session, session.begin():
        session.add(write)
    assert sorted(stored(engine)) == [1]


def test_the_adoption_example_runs() -> None:
    """examples/adopt_column.py reads during every batch, ends with no plaintext, finds by SSN."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "examples/adopt_column.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "batch 1: 2 encrypted; the app reads 6 SSNs"
    assert "plaintext left: 0" in lines
    assert "the app reads:  001-45-6781" in lines
    assert lines[-1] == "found by SSN:   user 4"
    assert "001-45-6781" not in next(line for line in lines if line.startswith("the DBA sees:"))


class BoundUser(Transitional):
    """A row-bound column during its adoption."""

    __tablename__ = "adopt_bound"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    secret: Mapped[str | None] = mapped_column(
        Encrypted(sa.String(20), keyring="pii", bind_row=True, transitional=True)
    )


def test_a_row_bound_column_reads_both_forms(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """Plaintext reads as its value, ciphertext is opened for its row by the ORM load hook."""
    md = sa.MetaData()
    t = sa.Table(
        "adopt_bound",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("secret", sa.String(20)),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i, "secret": f"secret {i}"} for i in range(1, 5)])
        schema.widen(conn, "adopt_bound", "secret", Storage.BINARY)
    bound = column_spec("adopt_bound", "secret", Transitional.metadata)
    assert bound.bind_row
    assert rotation.encrypt_column(engine, bound, segment="0/2").written == 2
    with Session(engine) as session, session.begin():
        assert {u.id: u.secret for u in session.scalars(sa.select(BoundUser))} == {
            i: f"secret {i}" for i in range(1, 5)
        }
        session.add(BoundUser(id=5, secret="secret 5"))
    raw = dict(raw_rows(engine, "SELECT id, secret FROM adopt_bound ORDER BY id"))
    assert [i for i, v in raw.items() if adoption.ciphertext_in(v, text=False)] == [2, 4, 5]
    with pytest.raises(fieldcrypt.DecryptionError):  # bound to row 2: fails when moved to row 1
        keyring.decrypt(
            adoption.ciphertext_in(raw[2], text=False) or b"", fieldcrypt.Place("adopt_bound", "secret", 1)
        )
