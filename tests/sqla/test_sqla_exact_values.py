"""Exact round trips: declared lengths and Enum members checked before encryption on every
database, values JSON or ISO 8601 would change refused, wrong-shape values and non-canonical
base64 read as DecryptionError, and MariaDB sessions outside strict mode refused."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import DecryptionError, InvalidValueError
from fieldcrypt.sqlalchemy import Encrypted


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


class ExactBase(DeclarativeBase):
    pass


class Record(ExactBase):
    __tablename__ = "exact_records"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    code: Mapped[str | None] = mapped_column(Encrypted(sa.String(11), keyring="pii"))
    size: Mapped[str | None] = mapped_column(Encrypted(sa.Enum("s", "m", name="size"), keyring="pii"))
    colour: Mapped[Colour | None] = mapped_column(Encrypted(sa.Enum(Colour), keyring="pii"))
    doc: Mapped[object | None] = mapped_column(Encrypted(sa.JSON, keyring="pii"))
    at: Mapped[dt.datetime | None] = mapped_column(Encrypted(sa.DateTime(timezone=True), keyring="pii"))
    count: Mapped[int | None] = mapped_column(Encrypted(sa.Integer, keyring="pii"))
    note: Mapped[str | None] = mapped_column(Encrypted(sa.String(20), keyring="pii", storage="text"))


@pytest.fixture
def exact_db(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> Iterator[sa.Engine]:
    """The exact-values table on each of the three databases."""
    ExactBase.metadata.create_all(engine)
    yield engine
    ExactBase.metadata.drop_all(engine)


def _insert(engine: sa.Engine, **values: object) -> None:
    with Session(engine) as session:
        session.add(Record(id=1, **values))
        session.commit()


def _refused(engine: sa.Engine, error: type[Exception], match: str, **values: object) -> None:
    """The flush fails with ``error`` (SQLAlchemy wraps a bind processor's error in StatementError)."""
    with pytest.raises(sa.exc.StatementError, match=match) as caught:
        _insert(engine, **values)
    assert isinstance(caught.value.orig, error)


def test_declared_length_is_enforced_alike_on_every_database(exact_db: sa.Engine) -> None:
    """String(11) refuses 12 characters (and 60) before encryption, on SQLite, PostgreSQL and MariaDB."""
    for too_long in ("1" * 12, "x" * 60):
        _refused(
            exact_db,
            InvalidValueError,
            r"exact_records\.code: the value is longer than the 11 char",
            code=too_long,
        )
    assert raw_rows(exact_db, "select count(*) from exact_records")[0][0] == 0
    _insert(exact_db, code="ßßßßßßßßßßß")  # 11 characters, 22 UTF-8 bytes: accepted and exact
    assert_ciphertext(raw_rows(exact_db, "select code from exact_records")[0][0], "ßßßß".encode())
    with Session(exact_db) as session:
        assert session.get(Record, 1).code == "ßßßßßßßßßßß"  # type: ignore[union-attr]


def test_enum_membership_is_enforced_before_encryption(exact_db: sa.Engine) -> None:
    """An Enum column refuses a string outside its values, and a Python-enum column a bare name."""
    _refused(exact_db, TypeError, r"exact_records\.size: expected one of the Enum's 2 values", size="xl")
    _refused(exact_db, TypeError, r"exact_records\.colour: expected Colour, got str", colour="RED")
    assert raw_rows(exact_db, "select count(*) from exact_records")[0][0] == 0


def test_json_that_would_change_is_refused(sqlite_engine: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """JSON with a tuple or a non-string key would read back different: refused on write."""
    ExactBase.metadata.create_all(sqlite_engine)
    _refused(sqlite_engine, TypeError, r"exact_records\.doc: JSON has no tuples", doc={"a": (1, 2)})
    _refused(
        sqlite_engine, TypeError, r"exact_records\.doc: JSON object keys must be str, not int", doc=[{1: "x"}]
    )
    _insert(sqlite_engine, doc={"a": [1, {"b": None}]})
    with Session(sqlite_engine) as session:
        assert session.get(Record, 1).doc == {"a": [1, {"b": None}]}  # type: ignore[union-attr]


def test_folded_datetimes_are_exact_or_refused(sqlite_engine: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """A naive fold=1 time would read back as the first of two wall times: refused; an aware one keeps its instant."""
    ExactBase.metadata.create_all(sqlite_engine)
    naive = dt.datetime(2024, 10, 27, 2, 30, fold=1)
    _refused(sqlite_engine, TypeError, r"exact_records\.at: a naive value with fold=1", at=naive)
    with pytest.raises(TypeError, match="fold=1"):
        fieldcrypt.codecs.TIME.to_bytes(dt.time(2, 30, fold=1))
    second = dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris"))  # the CET one
    _insert(sqlite_engine, at=second)
    with Session(sqlite_engine) as session:
        read = session.get(Record, 1).at  # type: ignore[union-attr]
    assert read is not None
    assert (read.utcoffset(), read.astimezone(dt.UTC)) == (dt.timedelta(hours=1), second.astimezone(dt.UTC))


def test_integer_value_read_as_float_names_the_column(
    sqlite_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """An authentic Integer value read by a column now declared Float is a DecryptionError naming it."""
    ExactBase.metadata.create_all(sqlite_engine)
    _insert(sqlite_engine, count=12345)
    as_float = sa.Table(
        "exact_records",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("count", Encrypted(sa.Float, keyring="pii")),
    )
    with (
        sqlite_engine.connect() as conn,
        pytest.raises(DecryptionError, match=r"exact_records\.count") as caught,
    ):
        conn.execute(sa.select(as_float.c["count"])).all()
    assert "12345" not in str(caught.value)


def test_text_storage_accepts_only_canonical_base64(
    sqlite_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """A base64 value with non-zero padding bits decodes to the same bytes, but is refused as not what was written."""
    ExactBase.metadata.create_all(sqlite_engine)
    _insert(sqlite_engine, note="hello!")  # 55 bytes: base64 ends in "=="
    stored = raw_rows(sqlite_engine, "select note from exact_records")[0][0]
    body = stored.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    # The last character before the padding carries unused low bits: set one of them.
    variant = body[:-1] + alphabet[alphabet.index(body[-1]) | 1] + stored[len(body) :]
    assert variant != stored
    assert stored.endswith("==")
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("update exact_records set note = :v"), {"v": variant})
    with Session(sqlite_engine) as session, pytest.raises(DecryptionError, match=r"exact_records\.note"):
        session.get(Record, 1)


def test_mariadb_outside_strict_mode_is_refused_before_writing(
    mariadb_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """A non-strict MariaDB session would truncate ciphertexts silently: writes of encrypted columns are refused."""
    ExactBase.metadata.create_all(mariadb_engine)
    lax = sa.create_engine(mariadb_engine.url, connect_args={"init_command": "SET SESSION sql_mode=''"})
    try:
        with pytest.raises(fieldcrypt.ConfigurationError, match="sql_mode is not strict"):
            _insert(lax, code="123-45-6789")
        with lax.begin() as conn, pytest.raises(fieldcrypt.ConfigurationError, match="STRICT_TRANS_TABLES"):
            conn.execute(sa.update(Record.__table__).values(code="1"))
        with lax.begin() as conn:  # plain SQL and reads are not the library's to refuse
            assert conn.execute(sa.select(sa.func.count()).select_from(Record.__table__)).scalar() == 0
    finally:
        lax.dispose()
    _insert(mariadb_engine, code="123-45-6789")  # the suite's server default is strict
    assert raw_rows(mariadb_engine, "select count(*) from exact_records")[0][0] == 1
