"""Compare-and-set write-back of one batch: a row is updated only if it still holds what was read.

An application writing concurrently therefore never loses an update: if it changed a row between
the engine's read and write, the engine's write matches nothing for that row and is counted as a
conflict (the row is re-read in the next pass). PostgreSQL gets one ``UPDATE ... FROM unnest()``
statement per batch (one round trip); other databases an executemany of the same statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from fieldcrypt.rotation.table import RAW, Target
from fieldcrypt.storage.sql_mode import require_strict


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
    return _generic(conn, target, changes)


def _generic(conn: sa.Connection, target: Target, changes: Sequence[Change]) -> int:
    table, column = target.table, target.column
    mysql = conn.dialect.name in ("mysql", "mariadb")
    where = [pk == sa.bindparam(f"k{i}", type_=pk.type) for i, pk in enumerate(target.pk)]
    if mysql:
        # Character columns compare case- and trailing-space-insensitively under MySQL's usual
        # collations: compare bytes, or a concurrent "abc" -> "ABC" would be overwritten.
        where.append(sa.cast(column, sa.LargeBinary) == sa.bindparam("old", type_=sa.LargeBinary))
    else:
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
    rows = []
    for change in changes:
        old = change.old.encode("utf-8") if mysql and isinstance(change.old, str) else change.old
        params = {f"k{i}": v for i, v in enumerate(change.pk)}
        rows.append({**params, "old": old, "new": change.new, "new_index": change.new_index})
    result = conn.execute(statement, rows)
    return int(result.rowcount)


def _postgresql(conn: sa.Connection, target: Target, changes: Sequence[Change]) -> int:
    dialect = conn.dialect
    preparer = dialect.identifier_preparer
    column = target.column
    col_type = column.type.compile(dialect)
    arrays: dict[str, list[Any]] = {}
    casts, names = [], []
    for i, pk in enumerate(target.pk):
        arrays[f"k{i}"] = [c.pk[i] for c in changes]
        casts.append(f"CAST(:k{i} AS {pk.type.compile(dialect)}[])")
        names.append(f"k{i}")
    arrays["old"] = [c.old for c in changes]
    arrays["new"] = [c.new for c in changes]
    casts += [f"CAST(:old AS {col_type}[])", f"CAST(:new AS {col_type}[])"]
    names += ["old", "new"]
    sets = [f"{preparer.quote(column.name)} = v.new"]
    if target.index_column is not None:
        arrays["new_index"] = [c.new_index for c in changes]
        casts.append("CAST(:new_index AS BYTEA[])")
        names.append("new_index")
        sets.append(f"{preparer.quote(target.index_column.name)} = v.new_index")
    table = preparer.format_table(target.table)
    match = " AND ".join(f"t.{preparer.quote(pk.name)} = v.k{i}" for i, pk in enumerate(target.pk))
    sql = (
        f"UPDATE {table} AS t SET {', '.join(sets)} "  # noqa: S608 - identifiers quoted by the dialect
        f"FROM unnest({', '.join(casts)}) AS v({', '.join(names)}) "
        f"WHERE {match} AND t.{preparer.quote(column.name)} = v.old"
    )
    return int(conn.execute(sa.text(sql), arrays).rowcount)
