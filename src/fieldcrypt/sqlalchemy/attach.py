"""The listeners that tie ``Encrypted`` to SQLAlchemy, through its documented event hooks.

* ``Column.before_parent_attach``: when an encrypted column joins a table, it gets its own copy of
  the type bound to ``(table.fullname, column.name)`` (the place in every ciphertext's associated data)
  and, when searchable, its blind-index column, appended just before the column itself.
* ``Column`` / ``PrimaryKeyConstraint`` ``after_parent_attach``: a table with row-bound columns
  and a key that cannot be an exact row key (a Float) is refused as it is declared.
* ``Engine.before_execute``: a ``schema_translate_map`` that moves a table is refused unless its
  encrypted columns can follow it (:mod:`fieldcrypt.sqlalchemy.translate`); INSERT/UPDATE statements writing encrypted columns on MariaDB/MySQL
  check that the session is in strict mode (:mod:`fieldcrypt.storage.sql_mode`); they keep blind
  indexes in step and seal row-bound values given as parameter dictionaries or updated by primary
  key; upserts' UPDATE halves are checked and get their blind-index columns
  (:mod:`fieldcrypt.sqlalchemy.upsert`).
* ``Engine.begin`` (SQLite only): searchable keyrings get their first blind-index key before an
  application transaction takes the single write lock.
* ``Mapper.mapper_configured``: mappers with row-bound columns get their flush and load hooks.
* ``Session.do_orm_execute``: blind-index searches return only rows that decrypt to the searched
  value (:mod:`fieldcrypt.sqlalchemy.verify`); ``Engine.before_execute`` refuses the searches
  nothing would verify.

Installed once, by the first ``Encrypted(...)`` made in the process (every listener above acts
only on encrypted columns, so none is needed before one exists); importing fieldcrypt installs
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Engine, PrimaryKeyConstraint, Table, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Delete, Insert, Update

from fieldcrypt.errors import QueryNotSupportedError
from fieldcrypt.sqlalchemy import _compat, blind_index, redaction, row_binding, translate, upsert, verify
from fieldcrypt.sqlalchemy.types import Encrypted
from fieldcrypt.storage import sql_mode
from fieldcrypt.storage.row_keys import check_key_types


def _on_column_attach(column: Column[Any], table: Any) -> None:
    type_ = column.type
    if not isinstance(type_, Encrypted) or not isinstance(table, Table):
        return
    # The schema is part of the place (``Table.fullname``, "schema.table"), as the Alembic
    # operations and the CLI name it: a value copied to another schema's table fails to decrypt.
    column.type = type_.bound_to(table.fullname, column.name)
    if column.type.searchable:
        blind_index.add_index_column(table, column, column.type)


def _check_row_key(element: Any, table: Any) -> None:
    # A row-bound value needs a key that encodes exactly: refuse a Float key when the table is
    # declared (a key column or constraint joining it), not at the first write.
    if not isinstance(table, Table):
        return
    bound = [c for c in table.columns if isinstance(c.type, Encrypted) and c.type.bind_row]
    if bound:
        check_key_types(list(table.primary_key.columns), f"{table.fullname}.{bound[0].name}")


def _before_execute(
    conn: Connection,
    clauseelement: Any,
    multiparams: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    execution_options: Any,
) -> tuple[Any, Sequence[Mapping[str, Any]], Mapping[str, Any]]:
    redaction.warn_if_rows_logged(conn)
    translation = execution_options.get(translate.TRANSLATE)
    if translation:
        translate.refuse_unfollowable(clauseelement, translation)
    if isinstance(clauseelement, Insert | Update):
        table = clauseelement.table
        sql_mode.require_strict(conn, lambda: any(isinstance(c.type, Encrypted) for c in table.columns))
    if isinstance(clauseelement, Insert):
        if clauseelement.select is not None:
            verify.refuse_unverified(clauseelement, execution_options)
        multiparams, params = row_binding.seal_insert_params(clauseelement, multiparams, params, translation)
        clauseelement = upsert.maintain_upsert(clauseelement)
        blind_index.refuse_duplicates_on_insert(conn, clauseelement, multiparams, params)
    elif isinstance(clauseelement, Update):
        verify.refuse_unverified(clauseelement, execution_options)
        clauseelement, multiparams, params = row_binding.seal_update(
            conn, clauseelement, multiparams, params, translation
        )
        clauseelement, multiparams, params = blind_index.maintain_on_update(
            conn, clauseelement, multiparams, params
        )
    elif isinstance(clauseelement, Select):
        _refuse_ordering(clauseelement)
        verify.refuse_unverified(clauseelement, execution_options)
    elif isinstance(clauseelement, Delete):
        verify.refuse_unverified(clauseelement, execution_options)
    return clauseelement, multiparams, params


def _refuse_ordering(select: Select[Any]) -> None:
    # ``order_by(User.ssn)`` names the column without calling an operator, so the comparator
    # cannot refuse it; ordering or grouping by ciphertext would "work" and mean nothing.
    # SQLAlchemy has no public accessor for these clauses; _compat reads them.
    for clause in _compat.ordering_clauses(select):
        type_ = getattr(clause, "type", None)  # labels and text() clauses have no type: nothing to refuse
        if isinstance(type_, Encrypted):
            table, column = type_._where()
            raise QueryNotSupportedError(
                f"{table}.{column} is encrypted: ordering or grouping by it cannot work on "
                "ciphertext; sort in the application after decrypting"
            )


def _on_begin(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        blind_index.prepare_before_sqlite_write(conn)


def _on_mapper_configured(mapper: Mapper[Any], _class: type[Any]) -> None:
    row_binding.install_mapper_hooks(mapper)


_installed = False


def install() -> None:
    """Register the listeners (idempotent; cheap after the first call)."""
    global _installed
    if _installed:
        return
    _installed = True
    # Before, not after: the index column is appended while its source is not yet in the table,
    # so it lands just ahead of it (Table.insert_column, which could place it later, is 2.1-only).
    if not event.contains(Column, "before_parent_attach", _on_column_attach):
        event.listen(Column, "before_parent_attach", _on_column_attach)
    for item in (Column, PrimaryKeyConstraint):
        if not event.contains(item, "after_parent_attach", _check_row_key):
            event.listen(item, "after_parent_attach", _check_row_key)
    if not event.contains(Engine, "before_execute", _before_execute):
        event.listen(Engine, "before_execute", _before_execute, retval=True)
    if not event.contains(Engine, "begin", _on_begin):
        event.listen(Engine, "begin", _on_begin)
    if not event.contains(Mapper, "mapper_configured", _on_mapper_configured):
        event.listen(Mapper, "mapper_configured", _on_mapper_configured)
    if not event.contains(Session, "do_orm_execute", verify.on_orm_execute):
        event.listen(Session, "do_orm_execute", verify.on_orm_execute)
