"""Upserts on encrypted columns: the UPDATE half of ON CONFLICT DO UPDATE / ON DUPLICATE KEY UPDATE.

The INSERT half of an upsert is an ordinary insert (the blind index filled by its column default,
row-bound values sealed by :mod:`fieldcrypt.sqlalchemy.row_binding`). The UPDATE half assigns
values that no default or bind processor sees in context, so this ``before_execute`` step checks
what it assigns to each encrypted column and keeps the blind index beside it. Each encrypted
column the UPDATE half assigns may take:

* the proposed row's value of the same column (``excluded.col``, MySQL's ``inserted.col``): the
  INSERT half encrypted it for this column, so its blind index is copied the same way
  (``excluded.col_bidx``). A row-bound column only when the conflict can be on the primary key
  alone, so that the proposed row and the existing row are one row (one key, one binding);
* a Python value (not for a row-bound column: which row it lands in is decided by the database):
  encrypted by the column's type, with its blind-index token added;
* the column itself (keep the stored value).

A per-tenant column (``tenant="tenant_id"``) and its tenant column move together: the UPDATE half
either leaves both alone or assigns both from the proposed row (``tenant_id = excluded.tenant_id``
and ``col = excluded.col``), so the stored value is always under the keys of the row's tenant.

Anything else (another column's value, a SQL expression) is refused with QueryNotSupportedError: its
ciphertext would be bound to the wrong place, or its blind index could not be kept in step.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, Table, UniqueConstraint, literal, null
from sqlalchemy.dialects.mysql.dml import OnDuplicateClause
from sqlalchemy.dialects.postgresql.dml import OnConflictDoUpdate as PgDoUpdate
from sqlalchemy.dialects.sqlite.dml import OnConflictDoUpdate as SqliteDoUpdate
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter, ColumnClause, Null
from sqlalchemy.sql.selectable import Alias

from fieldcrypt.errors import QueryNotSupportedError
from fieldcrypt.sqlalchemy import _compat, blind_index
from fieldcrypt.sqlalchemy.types import Encrypted

_PROPOSED_ROW = {OnDuplicateClause: "inserted", PgDoUpdate: "excluded", SqliteDoUpdate: "excluded"}


def maintain_upsert(statement: Insert) -> Insert:
    """Check an upsert's UPDATE half and add the blind-index columns its encrypted columns need.

    Raises:
        QueryNotSupportedError: an encrypted column is assigned something whose place or blind
            index cannot be kept correct (see the module docstring).
    """
    clauses = _compat.upsert_clauses(statement)
    table = statement.table
    if (
        not isinstance(table, Table)
        or not clauses
        or not any(isinstance(c.type, Encrypted) for c in table.columns)
    ):
        return statement
    kept = [_checked(clause, table) if type(clause) in _PROPOSED_ROW else clause for clause in clauses]
    if all(new is old for new, old in zip(kept, clauses, strict=True)):
        return statement
    updated: Insert = _compat.with_upsert_clauses(statement, kept)
    return updated


def _checked(clause: Any, table: Table) -> Any:
    """``clause``, or a copy that also assigns the blind indexes of the encrypted columns it sets."""
    mysql = isinstance(clause, OnDuplicateClause)
    given: dict[Any, Any] = dict(clause.update if mysql else clause.update_values_to_set)
    keys = {_key(k) for k in given}
    added: dict[str, Any] = {}
    row_bound = [c for c in table.columns if isinstance(c.type, Encrypted) and c.type.bind_row]
    if row_bound and keys & {c.key for c in table.primary_key.columns}:
        raise _refused(table, row_bound[0].name, "the upsert changes the primary key its values are bound to")
    _check_tenants(given, table, _PROPOSED_ROW[type(clause)])
    for target, value in given.items():
        column = table.c.get(_key(target))
        if column is None or not isinstance(column.type, Encrypted):
            continue
        type_: Encrypted[Any] = column.type
        index = type_.index_name if type_.searchable and type_.index_name not in keys else None
        proposed = _proposed_column(value, table, _PROPOSED_ROW[type(clause)])
        if proposed is not None and proposed.name == column.name:
            if type_.bind_row and not _conflicts_on_primary_key_only(clause, table):
                raise _refused(
                    table,
                    column.name,
                    "it is bound to its row, and the conflict may be on a key other than the primary "
                    "key, so the proposed row's value would land in another row; make the conflict "
                    "target the primary key",
                )
            if index and proposed.table is not None:
                added[index] = proposed.table.c[index]
        elif _is_itself(value, column):
            continue
        elif isinstance(value, BindParameter | Null) and not type_.sealed_before_write:
            if index:
                token = blind_index.token(type_, None if isinstance(value, Null) else value.effective_value)
                added[index] = null() if token is None else literal(token, table.c[index].type)
        elif type_.sealed_before_write:
            raise _refused(
                table,
                column.name,
                "it is bound to its row or tenant and an upsert cannot tell which row a value lands in; "
                "assign the proposed row's value (excluded.col / inserted.col) with the primary key "
                "as the conflict target",
            )
        else:
            raise _refused(
                table,
                column.name,
                "only a Python value, the proposed row's value of the same column, or the column "
                "itself keep its ciphertext and blind index correct",
            )
    return _compat.with_assignments(clause, {**given, **added}) if added else clause


def _check_tenants(given: dict[Any, Any], table: Table, alias_name: str) -> None:
    """Each tenant column and its per-tenant columns: all left alone, or all from the proposed row."""
    per_tenant = [
        (c, c.type.tenant)
        for c in table.columns
        if isinstance(c.type, Encrypted) and c.type.tenant is not None
    ]
    assigned = {_key(k): v for k, v in given.items()}
    for column, tenant_name in per_tenant:
        tenant = next((c for c in table.columns if c.name == tenant_name), None)
        if tenant is None:
            continue  # the INSERT half already said the tenant column is missing
        moved = [c for c in (tenant, column) if c.key in assigned and not _is_itself(assigned[c.key], c)]
        if not moved:
            continue
        together = all(
            (proposed := _proposed_column(assigned.get(c.key), table, alias_name)) is not None
            and proposed.name == c.name
            for c in (tenant, column)
        )
        if not together:
            raise _refused(
                table,
                column.name,
                f"it is per tenant (by {tenant.name}): assign both {tenant.name} and {column.name} "
                f"from the proposed row ({alias_name}.{tenant.name}, {alias_name}.{column.name}) or "
                "neither, so the stored value stays under the keys of its row's tenant",
            )


def _key(target: Any) -> str:
    return target if isinstance(target, str) else str(target.key)


def _proposed_column(value: Any, table: Table, alias_name: str) -> ColumnClause[Any] | None:
    """``value`` when it is a column of the upsert's proposed row (``excluded`` / ``inserted``)."""
    if not isinstance(value, ColumnClause) or not isinstance(value.table, Alias):
        return None
    alias = value.table
    if alias.name != alias_name or not _same_table(alias.element, table):
        return None
    return value


def _is_itself(value: Any, column: Any) -> bool:
    return (
        isinstance(value, ColumnClause) and _same_table(value.table, column.table) and value.key == column.key
    )


def _same_table(candidate: Any, table: Table) -> bool:
    # ORM statements carry annotated copies of the Table: the same table under another object.
    return candidate is table or (isinstance(candidate, Table) and candidate.fullname == table.fullname)


def _conflicts_on_primary_key_only(clause: Any, table: Table) -> bool:
    """True when the existing row an upsert updates must share the proposed row's primary key."""
    primary = {c.name for c in table.primary_key.columns}
    if not isinstance(clause, OnDuplicateClause):
        if isinstance(clause, PgDoUpdate) and clause.constraint_target is not None:
            return table.primary_key.name is not None and clause.constraint_target == table.primary_key.name
        if clause.inferred_target_elements is not None:
            named = {e if isinstance(e, str) else e.name for e in clause.inferred_target_elements}
            return named == primary
    # No target (MySQL always, SQLite optionally): any unique key may conflict.
    uniques = [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    return not uniques and not any(isinstance(i, Index) and i.unique for i in table.indexes)


def _refused(table: Table, column: str, why: str) -> QueryNotSupportedError:
    return QueryNotSupportedError(f"upsert into {table.fullname}.{column} refused: {why}")
