"""Blind-index columns: created beside a searchable encrypted column and kept in step with it.

The token is ``keyring.blind_index(codec.to_bytes(normalizer(value)), Place(table, column))``
(HMAC-SHA256 under a blind-index data key, truncated to the keyring's ``blind_index_bytes``).
Inserts fill it through a context-sensitive column default, which SQLAlchemy runs for ORM flushes,
Core ``insert()`` (inline values, executemany and insertmanyvalues) and ``bulk_insert_mappings``.
Updates fill it in :func:`maintain_on_update` (a ``before_execute`` hook), because a column
``onupdate`` cannot tell "the source was not touched" from "set it to NULL".
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.engine import Connection
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.sql.dml import Update

from fieldcrypt import index_records
from fieldcrypt.errors import ConfigurationError, QueryNotSupportedError
from fieldcrypt.indexing import column_indexer
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place
from fieldcrypt.registry import registered
from fieldcrypt.sqlalchemy import _compat, redaction, unique
from fieldcrypt.sqlalchemy.types import Encrypted, Sealed
from fieldcrypt.storage import sql as storage
from fieldcrypt.stores.sql import SqlKeyStore

log = logging.getLogger("fieldcrypt")
INFO_KEY = "fieldcrypt_index_for"  # Column.info key marking a blind-index column, naming its source


def token(type_: Encrypted[Any], value: Any, tenant: Any = None) -> bytes | None:
    """The blind-index token to store for ``value`` in the column ``type_`` is bound to (under
    the keyring of ``tenant`` for a per-tenant column)."""
    return tokenizer(type_)(value, tenant)


def tokenizer(type_: Encrypted[Any]) -> Callable[[Any, Any], bytes | None]:
    """``token(type_, value, tenant=None)`` for one column, resolved once, and per tenant keyring
    for a per-tenant column (:mod:`fieldcrypt.indexing`)."""
    found = _tokenizers.get(id(type_))
    # A copy of the type (``bound_to``) has another id; the identity checks catch an instance
    # whose options were set after its tokenizer was made.
    if found is not None and found[0] is type_.place and found[1] is type_.keyring:
        return found[2]
    table, column = type_._where()
    normalizer, to_bytes = type_.normalizer, type_.codec.to_bytes
    per_tenant = type_.tenant is not None
    index = column_indexer(type_.keyring, _column_place((table, column)), normalizer, per_tenant=per_tenant)

    def tokenize(value: Any, tenant: Any = None) -> bytes | None:
        if value is None:
            return None
        if type(value) is Sealed:
            return value.index
        if per_tenant and tenant is None:
            type_.row_keyring(tenant)  # raises: the row does not name its tenant
        if normalizer is not None:
            value = normalizer(value)
        try:
            plain = to_bytes(value)
        except TypeError as exc:
            raise TypeError(f"{table}.{column}: {exc}") from None
        return index(plain, tenant)

    key = id(type_)
    if key not in _tokenizers:
        weakref.finalize(type_, _tokenizers.pop, key, None)
    _tokenizers[key] = (type_.place, type_.keyring, tokenize)
    return tokenize


# Per Encrypted type (by id, removed when the type is collected, so an id is never reused while
# present): its place and keyring name when made, and the tokenizer.
_tokenizers: dict[int, tuple[object, object, Callable[[Any, Any], bytes | None]]] = {}


# Tokens are computed per row; the row-less place of a column is the same every time.
_places: dict[tuple[str, str], Place] = {}


def _column_place(where: tuple[str, str]) -> Place:
    place = _places.get(where)
    if place is None:
        if len(_places) >= 4096:
            _places.clear()
        place = _places[where] = Place(*where)
    return place


def add_index_column(table: Table, source: Column[Any], type_: Encrypted[Any]) -> None:
    """Give ``table`` the index column of ``source`` (reused when it is already declared)."""
    name = type_.index_name
    assert name is not None
    _searchable_keyrings.add(type_.keyring)
    if not type_.add_index_column:
        return  # declared on its own (Alembic revisions); the revision fills it when it writes
    existing = table.c.get(name)
    if existing is not None:
        if existing.info.get(INFO_KEY) == source.name:
            return  # a copy of the table (to_metadata, Alembic) brought the index column along
        raise ConfigurationError(
            f"{table.name}.{name} already exists: fieldcrypt creates the blind-index column of "
            f"{source.name} itself (pass index_column='...' to choose another name, or "
            "add_index_column=False to declare it yourself and fill it on insert)"
        )
    # Called while ``source`` is joining the table (attach.py), so appending places the index column
    # just before it: any copy of the table made column by column (Table.to_metadata, Alembic's
    # autogenerate) meets it first and reuses it.
    table.append_column(
        Column(
            name,
            storage.index_column_type(),
            default=_insert_default,
            nullable=True,
            index=True,
            unique=type_.unique or None,
            comment=f"fieldcrypt blind index of {source.name}",
            info={INFO_KEY: source.name},
        )
    )


# SQLite has one writer per file. A keyring whose SqlKeyStore shares the application's SQLite
# file creates its encryption key before an application transaction begins (stores/sql.py); its
# first blind-index key must be made then too, or the insert's index default would wait on the
# lock its own transaction holds. Names of keyrings used by searchable columns, and keyrings known
# to have an index key already (so the check costs a set lookup per transaction).
_searchable_keyrings: set[str] = set()
_ready: weakref.WeakSet[Keyring] = weakref.WeakSet()
_preparing = threading.local()


def prepare_before_sqlite_write(conn: Connection) -> None:
    """``begin`` hook (SQLite engines): make sure searchable keyrings have a blind-index key."""
    if getattr(_preparing, "on", False):
        return  # the key store's own transaction, opened while creating that key
    _preparing.on = True
    try:
        for name in tuple(_searchable_keyrings):
            keyring = registered().get(name)
            if keyring is not None:
                index_records.flush(keyring.key_store)  # column records a transaction deferred
            if keyring is None or keyring in _ready or not _shares_file(keyring, conn):
                continue
            keyring.blind_index(b"", Place("fieldcrypt", "prepare"))  # creates the key if none
            _ready.add(keyring)
    except Exception as exc:  # the write path raises the real error where it matters
        log.debug("fieldcrypt: blind-index key not prepared: %s", exc)
    finally:
        _preparing.on = False


def _shares_file(keyring: Keyring, conn: Connection) -> bool:
    # Only a SqlKeyStore in this very database can deadlock; other stores create keys lazily.
    # The store's own connections are skipped: they open while the keyring creates a key under
    # its (non-reentrant) lock, and asking that keyring for a key there would wait on itself.
    store = keyring.key_store
    if not isinstance(store, SqlKeyStore) or conn.engine is store.engine:
        return False
    return store.engine.url == conn.engine.url


def _insert_default(context: DefaultExecutionContext) -> bytes | None:
    """Context-sensitive default of an index column: the token of its source column's value.

    The source is looked up from the column being filled (not captured when it was created), so
    a copy of the table (``to_metadata``) indexes under its own place.
    """
    redaction.watch(context.dialect)  # runs before any bind processor of the statement is built
    index_column: Column[Any] = context.current_column
    found = _sources.get(id(index_column))
    if found is None:
        found = _source_of(index_column)
    key, tokenize, tenant_key = found
    params = context.get_current_parameters()  # type: ignore[no-untyped-call]
    # A per-tenant column's token is under the row's tenant's keyring.
    return tokenize(params.get(key), None if tenant_key is None else params.get(tenant_key))


# Per index column (by id, removed when the index column is collected, so an id is never reused
# while present): its source column's key, tokenizer and tenant column key (None unless per
# tenant). This default runs once per inserted row.
_Source = tuple[str, Callable[[Any, Any], bytes | None], str | None]
_sources: dict[int, _Source] = {}


def _source_of(index_column: Column[Any]) -> _Source:
    source_name = index_column.info[INFO_KEY]
    table = index_column.table
    source = next(c for c in table.columns if c.name == source_name)
    type_ = _enc(source)
    tenant = None if type_.tenant is None else next(c.key for c in table.columns if c.name == type_.tenant)
    found = (source.key, tokenizer(type_), tenant)
    key = id(index_column)
    _sources[key] = found
    weakref.finalize(index_column, _sources.pop, key, None)
    return found


def searchable_columns(table: Any) -> list[Column[Any]]:
    return [c for c in table.columns if isinstance(c.type, Encrypted) and c.type.searchable]


def refuse_duplicates_on_insert(
    conn: Connection, statement: Any, multiparams: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> None:
    """An INSERT of a ``unique=True`` column's value that a row holds under an older index key
    raises (before the statement runs, so the error is not wrapped and nothing is written)."""
    columns = [c for c in searchable_columns(statement.table) if _enc(c).unique and unique.rotating(_enc(c))]
    if not columns or _compat.upsert_clauses(statement):
        # An upsert may rewrite the very row that holds the value: left to the unique index.
        return
    given = list(multiparams or ([params] if params else []))
    if not given:
        given = [statement.compile(dialect=conn.dialect).params]  # insert().values(...)
    for values in given:
        for column in columns:
            if values.get(column.key) is not None:
                index = statement.table.c[_index_of(column)]
                tokens = unique.older_tokens(_enc(column), values[column.key])
                unique.refuse_duplicate(conn, _enc(column), index, tokens)


def maintain_on_update(
    conn: Connection,
    statement: Update,
    multiparams: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
) -> tuple[Update, Sequence[Mapping[str, Any]], Mapping[str, Any]]:
    """Add the index column to an UPDATE that sets a searchable column (params or ``.values()``)."""
    columns = searchable_columns(statement.table)
    if not columns:
        return statement, multiparams, params
    if multiparams:
        multiparams = [_with_tokens(columns, p) for p in multiparams]
    elif params:
        params = _with_tokens(columns, params)
    for given in multiparams or ([params] if params else []):
        for column in columns:
            if column.key in given:
                _refuse_duplicate(conn, statement, column, given[column.key], given)
    assigned = _inline_keys(statement)
    inline: dict[str, Any] = {}
    if any(c.key in assigned for c in columns):
        values = statement.compile(dialect=conn.dialect).params
        for column in columns:
            index_name = _index_of(column)
            if column.key not in assigned or index_name in assigned:
                continue
            if column.key not in values:
                raise QueryNotSupportedError(
                    f"{getattr(statement.table, 'name', '?')}.{column.name} is set from a bound "
                    "parameter of another name, so its blind index cannot be kept in step; use .values(col=value) or "
                    "pass the value under the column's own key"
                )
            inline[index_name] = token(_enc(column), values[column.key])
            _refuse_duplicate(conn, statement, column, values[column.key], {})
    if inline:
        try:
            statement = statement.values(inline)
        except InvalidRequestError as exc:  # ordered_values() statements take no further values
            raise QueryNotSupportedError(
                f"{getattr(statement.table, 'name', '?')} is updated with ordered_values(), to which "
                "fieldcrypt cannot add the blind-index column it must keep in step; use .values() instead"
            ) from exc
    return statement, multiparams, params


def _refuse_duplicate(
    conn: Connection, statement: Update, column: Column[Any], value: Any, params: Mapping[str, Any]
) -> None:
    type_ = _enc(column)
    tokens = unique.older_tokens(type_, value)
    if tokens:
        index = statement.table.c[_index_of(column)]
        unique.refuse_duplicate(conn, type_, index, tokens, rows_written=statement.whereclause, params=params)


def _with_tokens(columns: list[Column[Any]], params: Mapping[str, Any]) -> Mapping[str, Any]:
    added = {
        _index_of(c): token(_enc(c), params[c.key])
        for c in columns
        if c.key in params and _index_of(c) not in params
    }
    return {**params, **added} if added else params


def _inline_keys(statement: Update) -> set[str]:
    # The columns an UPDATE built with .values() or .ordered_values() assigns: strings or columns.
    return {target if isinstance(target, str) else target.key for target in _compat.update_targets(statement)}


def _enc(column: Column[Any]) -> Encrypted[Any]:
    type_ = column.type
    assert isinstance(type_, Encrypted)
    return type_


def _index_of(column: Column[Any]) -> str:
    name = _enc(column).index_name
    assert name is not None  # only searchable columns reach here
    return name
