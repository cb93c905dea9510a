"""SQLAlchemy internals fieldcrypt reads, each behind one function that fails loudly when gone.

Supported: SQLAlchemy 2.1 (the floor; the 2.0 shims stay, untested). Everything else in the integration uses
documented API (``TypeDecorator``, column and engine events, ``Table.append_column``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Update

from fieldcrypt._hostcompat import internal

_HOST = "SQLAlchemy"
# 2.0 keeps ``update().ordered_values(...)`` apart, in ``_ordered_values``; 2.1 folds it into
# ``_values``. Decided by version, not by probing, so a renamed attribute still fails loudly.
_SEPARATE_ORDERED_VALUES = tuple(int(p) for p in sqlalchemy.__version__.split(".")[:2]) < (2, 1)


def update_targets(statement: Update) -> list[Any]:
    """The columns (or string keys) an UPDATE assigns through ``.values()`` / ``.ordered_values()``."""
    why = "keep a searchable column's blind index in step with an UPDATE"
    targets = list(internal(statement, "_values", host=_HOST, why=why) or ())
    if _SEPARATE_ORDERED_VALUES:
        ordered = internal(statement, "_ordered_values", host=_HOST, why=why) or ()
        targets.extend(target for target, _value in ordered)
    return targets


def ordering_clauses(select: Select[Any]) -> tuple[Any, ...]:
    """The ORDER BY and GROUP BY clauses of ``select``."""
    why = "refuse ORDER BY or GROUP BY on an encrypted column"
    return (
        *internal(select, "_order_by_clauses", host=_HOST, why=why),
        *internal(select, "_group_by_clauses", host=_HOST, why=why),
    )


def hides_rows(select: Select[Any]) -> bool:
    """True when ``select`` groups (GROUP BY, HAVING) or de-duplicates (DISTINCT) its rows."""
    why = "refuse blind-index searches whose rows cannot be verified one by one"
    return bool(
        internal(select, "_group_by_clauses", host=_HOST, why=why)
        or internal(select, "_having_criteria", host=_HOST, why=why)
        or internal(select, "_distinct", host=_HOST, why=why)
    )


def limit_and_offset(select: Select[Any]) -> tuple[int | None, int | None]:
    """``select``'s LIMIT and OFFSET as integers (None where not set)."""
    why = "apply LIMIT and OFFSET after verifying blind-index matches"
    return internal(select, "_limit", host=_HOST, why=why), internal(select, "_offset", host=_HOST, why=why)


def only_return_tuples(state: ORMExecuteState) -> bool:
    """Whether a legacy ``Query`` asked for tuples (``Query.tuples()`` / ``only_return_tuples``)."""
    options = state.load_options
    why = "return instances, not rows, from a verified legacy Query search"
    return bool(internal(options, "_only_return_tuples", host=_HOST, why=why))


def mark_single_entity(result: Result[Any]) -> None:
    """Make a legacy ``Query`` return instances from ``result`` (the flag its own loader sets)."""
    why = "return instances, not rows, from a verified legacy Query search"
    attributes = internal(result, "_attributes", host=_HOST, why=why)
    result._attributes = attributes.union({"is_single_entity": True})


def upsert_clauses(statement: Any) -> tuple[Any, ...]:
    """The ON CONFLICT / ON DUPLICATE KEY clauses of an INSERT (SQLite may chain several)."""
    from sqlalchemy.sql.elements import ElementList

    why = "keep blind indexes and row binding correct in an upsert's UPDATE half"
    existing = internal(statement, "_post_values_clause", host=_HOST, why=why)
    if existing is None:
        return ()
    return tuple(existing.clauses) if isinstance(existing, ElementList) else (existing,)


def with_upsert_clauses(statement: Any, clauses: list[Any]) -> Any:
    """A copy of ``statement`` whose ON CONFLICT / ON DUPLICATE KEY clauses are ``clauses``."""
    copy = statement._generate()
    copy.apply_syntax_extension_point(lambda _existing: clauses, "post_values")
    return copy


def with_assignments(clause: Any, assignments: dict[Any, Any]) -> Any:
    """A copy of an upsert's UPDATE clause assigning ``assignments`` (target, WHERE, alias kept)."""
    from sqlalchemy.dialects.mysql.dml import OnDuplicateClause

    why = "add blind-index columns to an upsert's UPDATE half"
    copy = clause._clone()
    if isinstance(clause, OnDuplicateClause):
        ordering = internal(copy, "_parameter_ordering", host=_HOST, why=why)
        if ordering is not None:
            copy._parameter_ordering = [*ordering, *(k for k in assignments if k not in ordering)]
        copy.update = assignments
    else:
        copy.update_values_to_set = assignments
    return copy
