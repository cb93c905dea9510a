"""Reading a table in keyset pages by primary key, optionally one segment of N.

Keyset pagination (``WHERE pk > :last ORDER BY pk LIMIT n``) instead of a streaming cursor:
MariaDB cannot run an UPDATE on a connection with an open streaming read, every page is a short
indexed read, and the last key seen is a resumable position.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BIT

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.rotation.rowkeys import NO_CHOICE, Chosen
from fieldcrypt.scheduler import segment_from_environment
from fieldcrypt.storage.row_keys import canonical_key
from fieldcrypt.tenant_rows import TenantRows

_SEGMENT = re.compile(r"^(\d+)/(\d+)$")
RAW = sa.types.NullType()  # no bind or result processing: values exactly as the driver has them


@dataclass(frozen=True)
class Segment:
    """Segment ``index`` of ``count`` (0-based): rows whose integer key is ``index`` modulo ``count``
    (other keys: whose key's hash is, on PostgreSQL and MySQL/MariaDB).

    Modulo rather than key ranges so that N jobs started at different times on different machines
    agree on who owns which row without sharing any state: every row belongs to exactly one
    segment whatever the table's size when each job starts.
    """

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Segment:
        """``i/N``, or ``auto``: from the job scheduler's variables (:mod:`fieldcrypt.scheduler`)."""
        if text.strip() == "auto":
            return cls(*segment_from_environment())
        match = _SEGMENT.match(text.strip())
        if match is None:
            raise ConfigurationError(f"a segment is written i/N (for example 0/4), not {text!r}")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 0 <= index < count:
            raise ConfigurationError(f"segment {text!r}: need 0 <= i < N")
        return cls(index, count)

    def split(self, parts: int) -> list[Segment]:
        """This segment as ``parts`` segments (for worker threads): rows whose key mod N*W is
        i, i+N, i+2N, ... together are exactly the rows of i/N."""
        return [Segment(self.index + self.count * w, self.count * parts) for w in range(parts)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Segment()  # the whole table, as one segment


@dataclass(frozen=True)
class Target:
    """A reflected table and the columns the engine reads."""

    table: sa.Table
    column: sa.Column[Any]
    index_column: sa.Column[Any] | None
    pk: tuple[sa.Column[Any], ...]
    dialect: str = ""  # the database's dialect name: how a key that is not an integer is hashed
    only: tuple[sa.ColumnElement[bool], ...] = ()  # a tenant's rows only (TenantRows)
    # The tenant and subject columns choosing each row's key (None where the column has none).
    choosers: tuple[sa.Column[Any] | None, sa.Column[Any] | None] = (None, None)

    @classmethod
    def reflect(
        cls,
        conn: sa.Connection,
        table: str,
        column: str,
        index_column: str | None = None,
        tenant: TenantRows | None = None,
        choosers: tuple[str | None, str | None] = (None, None),
    ) -> Target:
        schema, _, name = table.rpartition(".")
        try:
            reflected = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema or None)
        except sa.exc.NoSuchTableError:
            raise ConfigurationError(f"table {table!r} does not exist") from None
        pk = tuple(reflected.primary_key.columns)
        if not pk:
            raise ConfigurationError(
                f"table {table!r} has no primary key; the engine pages and writes back by primary key"
            )
        for wanted in (column, index_column, tenant.column if tenant is not None else None, *choosers):
            if wanted is not None and wanted not in reflected.c:
                raise ConfigurationError(f"table {table!r} has no column {wanted!r}")
        index = reflected.c[index_column] if index_column else None
        only = () if tenant is None else (_tenant_is(reflected.c[tenant.column], tenant.tenant),)
        by = (
            None if choosers[0] is None else reflected.c[choosers[0]],
            None if choosers[1] is None else reflected.c[choosers[1]],
        )
        return cls(reflected, reflected.c[column], index, pk, conn.dialect.name, only, by)

    def row_key(self, values: Sequence[Any]) -> Any:
        """The primary key as the core's Place expects: canonical (as the application's writes
        made it, :mod:`fieldcrypt.storage.row_keys`), a scalar or a tuple in key-column order."""
        where = f"{self.table.name}.{self.column.name}"
        return canonical_key([c.type for c in self.pk], values, where)

    def page(self, after: Sequence[Any] | None, limit: int, segment: Segment) -> sa.Select[Any]:
        # The stored value raw (no result processing): a reflected SQLite DATE, FLOAT or BOOLEAN
        # column being adopted holds ciphertext bytes its declared type cannot read.
        value = sa.type_coerce(self.column, RAW).label(self.column.name)
        columns = [*self.pk, value] + ([self.index_column] if self.index_column is not None else [])
        columns += [c for c in self.choosers if c is not None]
        query = sa.select(*columns).order_by(*self.pk).limit(limit)
        if after is not None:
            if len(self.pk) == 1:
                query = query.where(self.pk[0] > after[0])
            else:
                query = query.where(sa.tuple_(*self.pk) > sa.tuple_(*after))
        return query.where(*self.segment_filter(segment), *self.only)

    def split(self, row: Sequence[Any]) -> tuple[tuple[Any, ...], Any, Any, Chosen]:
        """A row of :meth:`page` as (primary key, stored value, stored index, tenant and subject)."""
        width = len(self.pk)
        at = width + 1 + (self.index_column is not None)
        index = row[width + 1] if self.index_column is not None else None
        tenant, subject = self.choosers
        chosen = (
            NO_CHOICE
            if tenant is None and subject is None
            else Chosen(
                None if tenant is None else row[at],
                None if subject is None else row[at + (tenant is not None)],
            )
        )
        return tuple(row[:width]), row[width], index, chosen

    def segment_filter(self, segment: Segment) -> list[sa.ColumnElement[bool]]:
        if segment.count == 1:
            return []
        key = self.pk[0]
        if len(self.pk) == 1 and isinstance(key.type, sa.Integer):
            # ((pk % N) + N) % N: the sign of % follows the dividend on all three databases.
            return [((key % segment.count) + segment.count) % segment.count == segment.index]
        return [self._key_hash() % segment.count == segment.index]

    def _key_hash(self) -> sa.ColumnElement[int]:
        """A non-negative 32-bit hash of the primary key's text, computed by the database, for
        keys that are not one integer (UUID, string, composite): every job computes the same
        hash for a row, so the segments are disjoint and cover the table, and the filter stays
        beside the keyset range on the primary key index."""
        if self.dialect == "postgresql":
            text = sa.func.concat_ws("|", *(sa.cast(c, sa.Text) for c in self.pk))
            first_32_bits = sa.literal("x") + sa.func.substr(sa.func.md5(text), 1, 8)
            hashed: sa.ColumnElement[int] = sa.cast(sa.cast(first_32_bits, BIT(32)), sa.BigInteger)
            return hashed
        if self.dialect in ("mysql", "mariadb"):
            crc: sa.ColumnElement[int] = sa.func.crc32(sa.func.concat_ws("|", *self.pk))
            return crc
        raise ConfigurationError(
            f"on SQLite, segments need a single integer primary key; {self.table.name} has "
            f"{', '.join(c.name for c in self.pk)}: run it as one job (PostgreSQL and MySQL/MariaDB "
            "split any primary key)"
        )

    def count(self, conn: sa.Connection, segment: Segment, *, upto: Sequence[Any] | None = None) -> int:
        """Rows of ``segment``; with ``upto``, only those at or before that key (a resume position)."""
        query = (
            sa.select(sa.func.count())
            .select_from(self.table)
            .where(*self.segment_filter(segment), *self.only)
        )
        if upto is not None:
            query = query.where(self._key_at_most(upto))
        return int(conn.execute(query).scalar_one())

    def _key_at_most(self, key: Sequence[Any]) -> sa.ColumnElement[bool]:
        if len(self.pk) == 1:
            single: sa.ColumnElement[bool] = self.pk[0] <= key[0]
            return single
        at_most: sa.ColumnElement[bool] = sa.tuple_(*self.pk) <= sa.tuple_(*key)
        return at_most


def _tenant_is(column: sa.Column[Any], tenant: str) -> sa.ColumnElement[bool]:
    """``column = tenant``, the canonical tenant text given as the column's own Python type
    (an integer or UUID tenant column compares with an integer or UUID, and keeps its index)."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        kind = str
    try:
        value: Any = uuid.UUID(tenant) if kind is uuid.UUID else int(tenant) if kind is int else tenant
    except ValueError:
        raise ConfigurationError(
            f"tenant {tenant!r} is not a value of {column.name} ({column.type})"
        ) from None
    matches: sa.ColumnElement[bool] = column == value
    return matches
