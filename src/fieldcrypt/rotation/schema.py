"""Widening a plaintext column to hold ciphertext in place, and narrowing it back.

- binary storage: the column becomes BYTEA (PostgreSQL, converting each value to the UTF-8 bytes
  of its text form, which the engine parses back with the codec) or VARBINARY/BLOB (MariaDB,
  same bytes); SQLite keeps any value in any column, so nothing changes there.
- text storage: a VARCHAR(n) becomes TEXT (what ``Encrypted(..., storage="text")`` declares).
The new types are the ones ``fieldcrypt.sqlalchemy.Encrypted`` declares, so autogenerate sees no
difference afterwards.
Both are idempotent (a column already wide enough is left alone), so a rerun after a crash
between the ALTER and the batches does not fail.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fieldcrypt import storage as _storage
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.rotation.spec import Storage


def column_info(conn: sa.Connection, table: str, column: str) -> dict[str, Any]:
    schema, _, name = table.rpartition(".")
    for info in sa.inspect(conn).get_columns(name, schema=schema or None):
        if info["name"] == column:
            return dict(info)
    raise ConfigurationError(f"table {table!r} has no column {column!r}")


def widen(conn: sa.Connection, table: str, column: str, storage: Storage) -> sa.types.TypeEngine[Any]:
    """Make ``column`` able to hold ciphertext; returns its original type (for the way back)."""
    info = column_info(conn, table, column)
    original: sa.types.TypeEngine[Any] = info["type"]
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return original
    if storage is Storage.BINARY:
        if isinstance(original, sa.LargeBinary | sa.types._Binary):
            return original
        chars = getattr(original, "length", None) or _implied_length(original)
        length = None if chars is None else _storage.stored_size(4 * chars, storage)  # 4 UTF-8 bytes a char
        _alter(conn, table, column, _binary_type(dialect, length), info["nullable"], using="to_binary")
        return original
    if not isinstance(original, sa.String):
        raise ConfigurationError(
            f"{table}.{column} is {original}; text storage is for character columns: use storage='binary'"
        )
    if original.length is None:
        return original  # TEXT / unbounded VARCHAR: already wide enough
    _alter(conn, table, column, "TEXT", info["nullable"], using=None)
    return original


def narrow(
    conn: sa.Connection, table: str, column: str, original: sa.types.TypeEngine[Any], storage: Storage
) -> None:
    """Give ``column`` back its plaintext type once every value is plaintext.

    Only a SQLAlchemy type object is accepted: its SQL is compiled by the dialect, so no caller's
    text is ever spliced into the ALTER statement.
    """
    require_type(original, "the type to restore")
    type_sql = sa.types.to_instance(original).compile(conn.dialect)
    if conn.dialect.name == "sqlite":
        # Column types do not constrain SQLite values: give each value back its storage class
        # (TEXT for a string, INTEGER for an integer) instead of the BLOB the engine wrote.
        affinity = _sqlite_storage_class(type_sql)
        if affinity is None:
            return  # a BLOB column: the plaintext bytes are already what it held
        qtable, qcol = _quoted(conn, table, column)
        blobs = f"typeof({qcol}) = 'blob'"
        cast = f"UPDATE {qtable} SET {qcol} = CAST({qcol} AS {affinity}) WHERE {blobs}"  # noqa: S608 - quoted names
        conn.execute(sa.text(cast))
        return
    info = column_info(conn, table, column)
    if type_sql == info["type"].compile(conn.dialect):
        return
    using = "from_binary" if storage is Storage.BINARY else None
    if conn.dialect.name in ("mysql", "mariadb") and "UUID" in type_sql.upper():
        # MariaDB converts a BLOB to its UUID type as 16 raw bytes; the decrypted value is text.
        _alter(conn, table, column, "VARCHAR(36)", info["nullable"], using=None)
    _alter(conn, table, column, type_sql, info["nullable"], using=using, target=type_sql)


def require_type(type_: object, what: str) -> None:
    """Refuse anything but a SQLAlchemy type object (a string would be spliced into SQL)."""
    if not isinstance(type_, sa.types.TypeEngine) and not (
        isinstance(type_, type) and issubclass(type_, sa.types.TypeEngine)
    ):
        raise ConfigurationError(
            f"{what} must be a SQLAlchemy type object such as sa.String(11), not {type(type_).__name__} "
            "(SQL text is refused: it would be run as written)"
        )


def _sqlite_storage_class(type_sql: str) -> str | None:
    """What a plaintext value of the SQL type ``type_sql`` is stored as in SQLite (None: a BLOB).

    Not the type's own affinity: ``CAST('2024-01-31' AS DATE)`` is 2024 (DATE has NUMERIC
    affinity), and SQLAlchemy keeps dates, times and datetimes in SQLite as text.
    """
    name = type_sql.upper()
    if "BLOB" in name or "BINARY" in name:
        return None
    if any(kind in name for kind in ("DATE", "TIME", "CHAR", "CLOB", "TEXT", "JSON", "UUID")):
        return "TEXT"
    if "INT" in name or "BOOL" in name:
        return "INTEGER"
    if any(kind in name for kind in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    if "NUMERIC" in name or "DECIMAL" in name:
        return "NUMERIC"
    return "TEXT"


def _implied_length(type_: sa.types.TypeEngine[Any]) -> int | None:
    # Non-character types have a bounded text form (an integer, a date...): 64 characters covers
    # all of them except Numeric of huge precision and JSON, which get an unbounded column.
    if isinstance(type_, sa.Integer | sa.Date | sa.DateTime | sa.Time | sa.Boolean | sa.Float | sa.Uuid):
        return 64
    return None


def _binary_type(dialect: str, length: int | None) -> str:
    if dialect == "postgresql":
        return "BYTEA"
    # BLOB is what LargeBinary (Encrypted's storage) declares on MySQL; it holds 64 KiB.
    return "BLOB" if length is not None and length <= 65_535 else "LONGBLOB"


def _alter(
    conn: sa.Connection,
    table: str,
    column: str,
    type_sql: str,
    nullable: bool,
    *,
    using: str | None,
    target: str | None = None,
) -> None:
    qtable, qcol = _quoted(conn, table, column)
    if conn.dialect.name == "postgresql":
        clause = ""
        if using == "to_binary":
            clause = f" USING convert_to({qcol}::text, 'UTF8')"
        elif using == "from_binary":
            clause = f" USING CAST(convert_from({qcol}, 'UTF8') AS {target})"
        conn.execute(sa.text(f"ALTER TABLE {qtable} ALTER COLUMN {qcol} TYPE {type_sql}{clause}"))
    elif conn.dialect.name in ("mysql", "mariadb"):
        null = "NULL" if nullable else "NOT NULL"
        conn.execute(sa.text(f"ALTER TABLE {qtable} MODIFY {qcol} {type_sql} {null}"))
    else:
        raise ConfigurationError(f"widening a column is not implemented for {conn.dialect.name}")


def _quoted(conn: sa.Connection, table: str, column: str) -> tuple[str, str]:
    preparer = conn.dialect.identifier_preparer
    schema, _, name = table.rpartition(".")
    qtable = (preparer.quote_schema(schema) + "." if schema else "") + preparer.quote(name)
    return qtable, preparer.quote(column)
