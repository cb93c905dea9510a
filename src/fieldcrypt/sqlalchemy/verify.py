"""Verified blind-index matches: a row returned for ``col == v`` decrypts to ``v`` (normalised).

A blind-index search matches tokens, and a token proves nothing: anyone who can write the table
can copy the victim's token into their own row (or swap tokens under ``unique=True``), and
truncated HMACs can collide. So every statement that searches through a blind index is widened
with the searched column (and the primary key, to open row-bound values and name the row), run,
and filtered: a row whose value does not decrypt to a searched value (or, for ``!=`` / ``not_in``,
does) is dropped and reported on the ``fieldcrypt.audit`` logger as ``blind_index.mismatch``.
Dropping rather than raising keeps a tampered row from denying the victim's own search.

* ORM: transparent, in ``Session``'s ``do_orm_execute`` event (:func:`on_orm_execute`).
* Core: ``Connection.execute`` offers no hook that can drop rows, so a search executed there is
  refused (:func:`refuse_unverified`); run it with :func:`execute_verified` instead.

Only searches that are top-level ``AND`` terms of a SELECT's WHERE clause can be verified row by
row; a search under ``OR`` / ``NOT``, in a subquery, a join condition, an UPDATE / DELETE, or in a
grouped, aggregated or DISTINCT select is refused with :class:`QueryNotSupportedError`. The result
is buffered (it is filtered before the caller sees it); ``LIMIT`` / ``OFFSET`` apply after
filtering, so a planted row cannot push the real match out of ``.limit(1)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Connection, Result
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, ClauseElement
from sqlalchemy.sql.functions import FunctionElement

from fieldcrypt import audit
from fieldcrypt.errors import QueryNotSupportedError
from fieldcrypt.place import RowKey
from fieldcrypt.sqlalchemy import _compat, row_binding
from fieldcrypt.sqlalchemy.comparator import SearchTokens, tokens_for
from fieldcrypt.sqlalchemy.types import Encrypted, Sealed
from fieldcrypt.storage.row_keys import canonical_key

# Execution option set on statements whose searches are being verified (or that have none).
VERIFIED = "fieldcrypt_verified"


@dataclass(frozen=True)
class _Check:
    search: SearchTokens
    negated: bool  # NOT IN (``!=``, ``not_in``, ``~(col == v)``): a match must differ
    value_at: int  # position of the searched column among the added columns
    key_at: tuple[int, ...]  # positions of the primary-key columns among them
    tenant_at: int | None  # position of the tenant column (per-tenant columns)


@dataclass(frozen=True)
class _Plan:
    checks: tuple[_Check, ...]
    extra: int  # columns added at the end of each row
    limit: int | None
    offset: int | None


def searches_in(statement: ClauseElement) -> list[SearchTokens]:
    """Every blind-index search anywhere in ``statement`` (subqueries and joins included)."""
    return [e for e in visitors.iterate(statement) if isinstance(e, SearchTokens)]


def plan(statement: Any) -> tuple[Select[Any], _Plan] | None:
    """The widened statement and its filter, or None when ``statement`` searches nothing.

    Raises:
        QueryNotSupportedError: a search this module cannot verify row by row.
    """
    found = searches_in(statement)
    if not found:
        return None
    name = _described(found[0])
    if any(s.per_tenant is not None for s in found) and isinstance(statement, Select):
        statement = _with_tenant_tokens(statement, found)
        found = searches_in(statement)
    if not isinstance(statement, Select):
        raise QueryNotSupportedError(
            f"{name}: a blind-index search in a {type(statement).__name__} cannot be verified (a "
            "planted token would make it touch another row); select the rows first, then change "
            "them by primary key"
        )
    top = {
        term.right: term.operator is operators.not_in_op
        for term in row_binding.and_terms(statement.whereclause)
        if isinstance(term, BinaryExpression)
        and isinstance(term.right, SearchTokens)
        and term.operator in (operators.in_op, operators.not_in_op)
    }
    if any(s not in top for s in found):
        raise QueryNotSupportedError(
            f"{name}: a blind-index search can be verified only as a top-level AND term of a "
            "SELECT's WHERE clause (not under OR / NOT, in a subquery or a join condition)"
        )
    if _aggregates(statement):
        raise QueryNotSupportedError(
            f"{name}: a blind-index search cannot be verified in a grouped, aggregated or DISTINCT "
            "select (count(), GROUP BY, ...); select the matching rows and aggregate in Python"
        )
    extra: list[Any] = []
    checks: list[_Check] = []
    for search, negated in top.items():
        keys = list(search.source.table.primary_key)
        tenant = _tenant_column_of(search)
        at = len(extra)
        tenant_at = None if tenant is None else at + 1 + len(keys)
        checks.append(_Check(search, negated, at, tuple(range(at + 1, at + 1 + len(keys))), tenant_at))
        extra += [search.source, *keys, *([] if tenant is None else [tenant])]
    limit, offset = _compat.limit_and_offset(statement)
    widened = statement.limit(None).offset(None).add_columns(*extra)
    return widened, _Plan(tuple(checks), len(extra), limit, offset)


def filtered(result: Result[Any], plan: _Plan) -> Result[Any]:
    """``result`` without the rows that fail a check, and without the added columns."""
    width = len(result.keys()) - plan.extra
    frozen = result.freeze()
    kept = [row for row in frozen.data if all(_matches(check, row[width:]) for check in plan.checks)]
    start = plan.offset or 0
    kept = kept[start : None if plan.limit is None else start + plan.limit]
    return frozen.with_new_rows(kept)().columns(*range(width))


def execute_verified(
    conn: Connection,
    statement: Any,
    parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    *,
    execution_options: Mapping[str, Any] | None = None,
) -> Result[Any]:
    """``conn.execute(statement)`` with its blind-index matches verified (Core).

    Use it for Core SELECTs that search an encrypted column (``conn.execute`` refuses them);
    ORM sessions verify on their own. Returns a buffered :class:`Result`.

    Raises:
        QueryNotSupportedError: a search that cannot be verified row by row.
        DecryptionError: a searched value that does not decrypt at all (tampered ciphertext).
    """
    options = {**(execution_options or {}), VERIFIED: True}
    planned = plan(statement)
    if planned is None:
        return conn.execute(statement, parameters, execution_options=options)
    widened, how = planned
    return filtered(conn.execute(widened, parameters, execution_options=options), how)


def on_orm_execute(state: ORMExecuteState) -> Result[Any] | None:
    """``Session.do_orm_execute``: run searches widened, and hand back only verified rows."""
    if state.execution_options.get(VERIFIED):
        return None
    planned = plan(state.statement)
    if planned is None:
        state.update_execution_options(**{VERIFIED: True})
        return None
    widened, how = planned
    result = filtered(state.invoke_statement(statement=widened, execution_options={VERIFIED: True}), how)
    if _legacy_single_entity(state):
        # Legacy Query reads this flag to return instances instead of one-element rows; the
        # widened statement had several columns, so the ORM set it to False.
        _compat.mark_single_entity(result)
    return result


def _legacy_single_entity(state: ORMExecuteState) -> bool:
    described = getattr(state.statement, "column_descriptions", [])
    if _compat.only_return_tuples(state) or len(described) != 1:
        return False
    expr = described[0].get("expr")
    return expr is not None and expr is described[0].get("entity")


def refuse_unverified(statement: Any, execution_options: Mapping[str, Any]) -> None:
    """``Engine.before_execute``: a blind-index search that nothing will verify is refused."""
    if execution_options.get(VERIFIED):
        return
    found = searches_in(statement)
    if found:
        raise QueryNotSupportedError(
            f"{_described(found[0])}: Connection.execute cannot verify blind-index matches (a "
            "planted token would return another row); use "
            "fieldcrypt.sqlalchemy.execute_verified(conn, statement) or an ORM Session"
        )


def _matches(check: _Check, added: Sequence[Any]) -> bool:
    search = check.search
    type_: Encrypted[Any] = search.source.type
    value = added[check.value_at]
    key: RowKey | None = None
    if check.key_at:
        table, column = type_._where()
        keys = search.source.table.primary_key
        key = canonical_key([c.type for c in keys], [added[i] for i in check.key_at], f"{table}.{column}")
    if type(value) is Sealed:
        tenant = None if check.tenant_at is None else added[check.tenant_at]
        value = row_binding.open_sealed(type_, value, key if type_.bind_row else None, tenant=tenant)
    ok = value is not None and (type_.index_plaintext(value) in search.searched) != check.negated
    if not ok:
        table, column = type_._where()
        audit.blind_index_mismatch(table, column, None if key is None else repr(key))
    return ok


def _tenant_column_of(search: SearchTokens) -> Any:
    """The tenant column of a per-tenant search's source, as the statement names its table."""
    name = search.source.type.tenant
    if name is None:
        return None
    return next(c for c in search.source.table.c if c.name == name)


def _with_tenant_tokens(statement: Select[Any], found: list[SearchTokens]) -> Select[Any]:
    """``statement`` with the tokens of its per-tenant searches computed under the keyring of the
    tenant its WHERE names (``tenant_col == value``, a top-level AND term).

    Raises:
        QueryNotSupportedError: a per-tenant search whose statement names no single tenant.
    """
    filled: dict[int, SearchTokens] = {}
    for search in found:
        if search.per_tenant is None:
            continue
        type_: Encrypted[Any] = search.source.type
        tenant = _tenant_named(statement, search)
        keyring = type_.row_keyring(tenant)
        tokens = [t for value in search.per_tenant for t in tokens_for(type_, keyring, value)]
        filled[id(search)] = SearchTokens(tokens, search.type, search.source, search.searched)

    def replace(element: Any, **_: Any) -> Any:
        return filled.get(id(element))

    replaced = visitors.replacement_traverse(statement, {}, replace)
    assert isinstance(replaced, Select)
    return replaced


def _tenant_named(statement: Select[Any], search: SearchTokens) -> Any:
    """The value a top-level ``tenant_col == value`` term of the WHERE gives the search's tenant."""
    tenant_column = _tenant_column_of(search)
    for left, right in row_binding.equalities(statement.whereclause):
        if left.compare(tenant_column) and right.effective_value is not None:
            return right.effective_value
    type_: Encrypted[Any] = search.source.type
    table, column = type_._where()
    raise QueryNotSupportedError(
        f"{table}.{column} is per tenant (by {type_.tenant}): its blind index is the tenant's, so a "
        f"search runs within one tenant; add {type_.tenant} == <tenant> to the same WHERE "
        f"(where(Model.{type_.tenant} == t, Model.{column} == v))"
    )


def _aggregates(statement: Select[Any]) -> bool:
    # GROUP BY / HAVING / DISTINCT hide rows; so does an aggregate, so any SQL function among
    # the selected columns counts too.
    if _compat.hides_rows(statement):
        return True
    return any(
        isinstance(e, FunctionElement)
        for column in statement.selected_columns
        for e in visitors.iterate(column)
    )


def _described(search: SearchTokens) -> str:
    table, column = search.source.type._where()
    return f"{table}.{column}"
