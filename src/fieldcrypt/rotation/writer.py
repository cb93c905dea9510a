"""Compare-and-set write-back of one batch: a row is updated only if it still holds what was read.

An application writing concurrently therefore never loses an update: if it changed a row between
the engine's read and write, the engine's write matches nothing for that row and is counted as a
conflict (the row is re-read in the next pass). Every database gets a whole batch in a few
statements, never a round trip per row, because the database's write rate is rotation's pace:

- PostgreSQL: one ``UPDATE ... FROM unnest(arrays)``; under psycopg 3 the ``bytea`` and integer
  arrays go as binary parameters (the text format escapes every byte of every ciphertext);
- MySQL/MariaDB: the batch is inserted, multi-row, into a session temporary table with the key
  columns' own types, then one ``UPDATE ... JOIN`` (an executemany of UPDATE is one round trip
  per row there);
- SQLite: an executemany of the single-row statement (in-process, no round trips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from fieldcrypt.rotation.table import RAW, Target
from fieldcrypt.storage.sql_mode import require_strict

BATCH_TABLE = "fieldcrypt_rotation_batch"  # MySQL/MariaDB: a TEMPORARY table, one per session


@dataclass(frozen=True)
class Change:
    """New content for one row: ``old`` is the stored value read, exactly as the driver gave it."""

    pk: tuple[Any, ...]
    old: Any
    new: Any
    new_index: bytes | None = None


def write_batch(conn: sa.Connection, target: Target, changes: Sequence[Change]) -> int:
    """Apply ``changes`` where rows still hold their ``old`` value; returns the rows written."""
    if not changes:
        return 0
    require_strict(conn)
    if conn.dialect.name == "postgresql":
        return _postgresql(conn, target, changes)
    if conn.dialect.name in ("mysql", "mariadb"):
        return _mysql(conn, target, changes)
    return _generic(conn, target, changes)


def _generic(conn: sa.Connection, target: Target, changes: Sequence[Change]) -> int:
    table, column = target.table, target.column
    where = [pk == sa.bindparam(f"k{i}", type_=pk.type) for i, pk in enumerate(target.pk)]
    # The value exactly as read (raw, see Target.page), never through the reflected column's
    # type: SQLite keeps a DATE column's declared type while it holds ciphertext bytes.
    where.append(sa.type_coerce(column, RAW) == sa.bindparam("old", type_=RAW))
    # What is written is bytes (binary storage) or text, bound as such: a NullType bind would take
    # the reflected column's type (Date, Float, Boolean on SQLite) and fail on ciphertext.
    new_type = sa.LargeBinary() if isinstance(changes[0].new, bytes) else sa.Text()
    values: dict[str, Any] = {column.name: sa.bindparam("new", type_=new_type)}
    if target.index_column is not None:
        values[target.index_column.name] = sa.bindparam("new_index", type_=sa.LargeBinary)
    statement = sa.update(table).where(*where).values(values)
    rows = [
        {**{f"k{i}": v for i, v in enumerate(c.pk)}, "old": c.old, "new": c.new, "new_index": c.new_index}
        for c in changes
    ]
    return int(conn.execute(statement, rows).rowcount)


def _mysql(conn: sa.Connection, target: Target, changes: Sequence[Change]) -> int:
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    column, index = target.column, target.index_column
    # The key columns' own types (charset and collation included), so the join compares like
    # with like and walks the primary key index; the new value in the column's own type, as a
    # single-row UPDATE would convert it.
    fields = [(f"k{i}", pk.type.compile(dialect)) for i, pk in enumerate(target.pk)]
    fields += [("old", "LONGBLOB"), ("new", column.type.compile(dialect))]
    if index is not None:
        fields.append(("new_index", index.type.compile(dialect)))
    conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {BATCH_TABLE}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {BATCH_TABLE} ({', '.join(f'{n} {t}' for n, t in fields)})")
    insert = sa.table(BATCH_TABLE, *(sa.column(n) for n, _ in fields)).insert()
    rows = []
    for c in changes:
        # Character columns compare case- and trailing-space-insensitively under MySQL's usual
        # collations: compare bytes, or a concurrent "abc" -> "ABC" would be overwritten.
        old = c.old.encode("utf-8") if isinstance(c.old, str) else c.old
        row = {f"k{i}": v for i, v in enumerate(c.pk)}
        rows.append({**row, "old": old, "new": c.new, "new_index": c.new_index})
    conn.execute(insert, rows)  # PyMySQL and mysqlclient send an INSERT executemany multi-row
    sets = [f"t.{quote(column.name)} = v.new"]
    if index is not None:
        sets.append(f"t.{quote(index.name)} = v.new_index")
    match = " AND ".join(f"t.{quote(pk.name)} = v.k{i}" for i, pk in enumerate(target.pk))
    sql = (
        f"UPDATE {dialect.identifier_preparer.format_table(target.table)} AS t "  # noqa: S608 - quoted
        f"JOIN {BATCH_TABLE} AS v ON {match} AND CAST(t.{quote(column.name)} AS BINARY) = v.old "
        f"SET {', '.join(sets)}"
    )
    written = int(conn.exec_driver_sql(_escaped(sql)).rowcount)
    conn.exec_driver_sql(f"DROP TEMPORARY TABLE {BATCH_TABLE}")
    return written


def _postgresql(conn: sa.Connection, target: Target, changes: Sequence[Change]) -> int:
    dialect = conn.dialect
    preparer = dialect.identifier_preparer
    column = target.column
    col_type = column.type.compile(dialect)
    arrays: dict[str, list[Any]] = {}
    types: dict[str, str] = {}
    for i, pk in enumerate(target.pk):
        arrays[f"k{i}"] = [c.pk[i] for c in changes]
        types[f"k{i}"] = pk.type.compile(dialect)
    arrays["old"] = [c.old for c in changes]
    arrays["new"] = [c.new for c in changes]
    types["old"] = types["new"] = col_type
    sets = [f"{preparer.quote(column.name)} = v.new"]
    if target.index_column is not None:
        arrays["new_index"] = [c.new_index for c in changes]
        types["new_index"] = "BYTEA"
        sets.append(f"{preparer.quote(target.index_column.name)} = v.new_index")
    table = preparer.format_table(target.table)
    match = " AND ".join(f"t.{preparer.quote(pk.name)} = v.k{i}" for i, pk in enumerate(target.pk))
    head = f"UPDATE {table} AS t SET {', '.join(sets)} FROM unnest("  # noqa: S608 - quoted identifiers
    tail = f") AS v({', '.join(arrays)}) WHERE {match} AND t.{preparer.quote(column.name)} = v.old"
    if dialect.driver != "psycopg":
        casts = ", ".join(f"CAST(:{name} AS {types[name]}[])" for name in arrays)
        return int(conn.execute(sa.text(head + casts + tail), arrays).rowcount)
    # psycopg 3: bytes and integers as binary parameters (%b); anything else in psycopg's own
    # choice (%s). Identifiers are escaped for its paramstyle, the statement goes as it is.
    casts = ", ".join(
        f"CAST(%({name}){_format(values)} AS {_escaped(types[name])}[])" for name, values in arrays.items()
    )
    return int(conn.exec_driver_sql(_escaped(head) + casts + _escaped(tail), arrays).rowcount)


def _format(values: Sequence[Any]) -> str:
    first = next((v for v in values if v is not None), None)
    return "b" if isinstance(first, bytes | int) and not isinstance(first, bool) else "s"


def _escaped(sql: str) -> str:
    """``sql`` for a driver whose paramstyle reads ``%`` (an identifier may contain one)."""
    return sql.replace("%", "%%")
