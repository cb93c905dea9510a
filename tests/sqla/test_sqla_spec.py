"""The storage rules of docs/sqlalchemy.md, stated by column_spec and by the DDL on each dialect."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqla_helpers import raw_rows
from sqla_models import Base, Patient, User, digits_only
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from fieldcrypt import ConfigurationError, Place, codecs
from fieldcrypt import format as fmt
from fieldcrypt.sqlalchemy import column_spec, encrypted_columns


def test_column_spec_states_how_a_column_is_stored() -> None:
    """keyring, codec, storage, row binding, index column and normaliser for three columns."""
    ssn = column_spec("users", "ssn", Base.metadata)
    assert (ssn.keyring, ssn.codec, ssn.storage, ssn.bind_row) == ("pii", codecs.TEXT, "binary", False)
    assert (ssn.index_column, ssn.normalizer, ssn.primary_key) == ("ssn_bidx", digits_only, ("id",))
    email = column_spec("users", "email", User.__table__)
    assert (email.storage, email.index_column, email.normalizer) == ("text", "email_bidx", None)
    notes = column_spec("patients", "notes", Base.metadata)
    assert (notes.bind_row, notes.index_column, notes.codec) == (True, None, codecs.TEXT)
    assert {(s.table, s.column) for s in encrypted_columns(User.__table__)} == {
        ("users", "ssn"),
        ("users", "tax_id"),
        ("users", "email"),
    }


def test_column_spec_refuses_what_is_not_encrypted() -> None:
    """A plaintext or unknown column, or an unknown table, is a clear error."""
    with pytest.raises(ConfigurationError, match=r"^users\.name is not an encrypted column$"):
        column_spec("users", "name", Base.metadata)
    with pytest.raises(ConfigurationError, match=r"^no table named 'nope' in this MetaData$"):
        column_spec("nope", "x", Base.metadata)


def test_raw_sql_written_by_the_spec_is_read_by_the_orm(db: sa.Engine) -> None:
    """What column_spec.encrypt/index produce for raw SQL (the rotation engine's path) is what the
    ORM reads and searches: the storage rules are one set of rules."""
    ssn, email = column_spec("users", "ssn", Base.metadata), column_spec("users", "email", Base.metadata)
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, name, ssn, ssn_bidx, email, email_bidx) VALUES (1, 'r', :s, :si, :e, :ei)"
            ),
            {
                "s": ssn.encrypt("123-45-6789"),
                "si": ssn.index("123-45-6789"),
                "e": email.encrypt("r@example.com"),
                "ei": email.index("r@example.com"),
            },
        )
    with Session(db) as session:
        user = session.scalars(sa.select(User).where(User.ssn == "123456789")).one()
        assert (user.ssn, user.email) == ("123-45-6789", "r@example.com")
        assert session.scalars(sa.select(User.id).where(User.email == "r@example.com")).one() == 1
    row = raw_rows(db, "SELECT ssn, email FROM users")[0]
    assert ssn.decrypt(row.ssn) == "123-45-6789"
    assert isinstance(row.email, str)
    assert email.decrypt(row.email) == "r@example.com"
    assert fmt.parse(fmt.from_text(row.email)).key_id == fmt.parse(bytes(row.ssn)).key_id


def test_row_bound_spec_uses_the_primary_key_as_the_row(db: sa.Engine) -> None:
    """For bind_row columns the place's row is the primary-key value; without it, an error."""
    import uuid

    pid = uuid.uuid4()
    with Session(db) as session:
        session.add(Patient(id=pid, notes="bound"))
        session.commit()
    spec = column_spec("patients", "notes", Base.metadata)
    assert spec.place(pid) == Place("patients", "notes", pid)
    with pytest.raises(ConfigurationError, match=r"patients\.notes is bound to its row: pass row="):
        spec.place()
    stored = raw_rows(db, "SELECT notes FROM patients")[0].notes
    assert spec.decrypt(bytes(stored), row=pid) == "bound"


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (postgresql.dialect(), ["ssn BYTEA", "ssn_bidx BYTEA", "email TEXT", "tax_id BYTEA"]),
        (
            mysql.dialect(),
            [
                "ssn VARBINARY(93)",
                "ssn_bidx VARBINARY(32)",
                "email VARCHAR(708) CHARACTER SET ascii COLLATE ascii_bin",
                "tax_id VARBINARY(93)",
            ],
        ),
        (sqlite.dialect(), ["ssn BLOB", "ssn_bidx BLOB", "email TEXT", "tax_id BLOB"]),
    ],
)
def test_column_types_per_dialect(dialect: sa.engine.Dialect, expected: list[str]) -> None:
    """Binary storage is BYTEA / VARBINARY(4n+49) / BLOB; text is TEXT or an ASCII VARCHAR sized for base64."""
    ddl = str(CreateTable(User.__table__).compile(dialect=dialect))
    for fragment in expected:
        assert fragment in ddl, ddl


def test_unbounded_types_use_long_columns_on_mysql() -> None:
    """Text, JSON and LargeBinary have no bound: LONGBLOB (binary) on MySQL/MariaDB."""
    ddl = str(CreateTable(Base.metadata.tables["everything"]).compile(dialect=mysql.dialect()))
    for fragment in [
        "t LONGBLOB",
        "js LONGBLOB",
        "lb LONGBLOB",
        "n LONGBLOB",
        "i VARBINARY(69)",
        "b VARBINARY(50)",
    ]:
        assert fragment in ddl, ddl


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        (sa.Enum("a", "b", name="ab"), "enum"),
        (mysql.TINYINT(), codecs.INT),
        (sa.BigInteger(), codecs.INT),
        (postgresql.DOUBLE_PRECISION(), codecs.FLOAT),
        (sa.Numeric(10, 2, asdecimal=False), codecs.FLOAT),
        (sa.Numeric(10, 2), codecs.DECIMAL),
        (postgresql.TIMESTAMP(timezone=True), codecs.DATETIME),
        (sa.Uuid(as_uuid=False), codecs.TEXT),
        (postgresql.JSONB(), codecs.JSON),
        (sa.CHAR(3), codecs.TEXT),
        (sa.LargeBinary(), codecs.BYTES),
    ],
)
def test_codec_table_picks_the_nearest_declared_class(
    declared: sa.types.TypeEngine[object], codec: object
) -> None:
    """codec_for looks the declared type's classes up nearest first: Enum before String, Float before Numeric."""
    from fieldcrypt.storage.sql import codec_for

    found = codec_for(declared)
    assert (found.name if codec == "enum" else found) == codec  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="cannot encrypt a ARRAY column"):
        codec_for(postgresql.ARRAY(sa.Integer()))
