"""SQL operators on encrypted columns: equality through the blind index, everything else refused.

With a fresh random nonce per value, ``ssn == v`` compared against ciphertext would silently
match nothing (sqlalchemy#5807), and so would LIKE, ranges and ORDER BY. Equality and ``IN`` are
rewritten to the blind-index column; every other operator raises ``QueryNotSupportedError``
naming the column, so a query that cannot work never quietly returns an empty result.

A token match is not proof: anyone who can write the table can copy a victim's token into another
row, and truncated HMACs can collide. The tokens therefore travel in a :class:`SearchTokens`
parameter that also carries what a match must decrypt to; :mod:`fieldcrypt.sqlalchemy.verify`
finds it in the executed statement and drops the rows that do not decrypt to the searched value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import false
from sqlalchemy.sql import ColumnElement, operators
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnClause
from sqlalchemy.types import TypeDecorator

from fieldcrypt import index_records
from fieldcrypt.errors import QueryNotSupportedError
from fieldcrypt.registry import get_keyring

if TYPE_CHECKING:
    from fieldcrypt.keyring import Keyring
    from fieldcrypt.sqlalchemy.types import Encrypted

_EQUALITY = {operators.eq, operators.ne, operators.in_op, operators.not_in_op}
# Operators that never look at the stored bytes (NULL tests), safe on ciphertext.
_HARMLESS = {operators.is_, operators.is_not}


class SearchTokens(BindParameter[Any]):
    """The blind-index tokens of one search, and what every row it matches must decrypt to.

    ``source`` is the encrypted column searched (as the statement names it, alias included);
    ``searched`` the index plaintexts (codec bytes of the normalised values) of the search (the
    operator around it, IN or NOT IN, says which way the rows must match). Compiled and cached exactly like the bound
    parameter it is (``inherit_cache``); the extra attributes are never rendered nor logged.
    """

    inherit_cache = True

    def __init__(
        self,
        tokens: list[bytes],
        index_type: Any,
        source: Any,
        searched: frozenset[bytes],
        per_tenant: tuple[Any, ...] | None = None,
    ) -> None:
        super().__init__(None, tokens, type_=index_type, unique=True, expanding=True)
        self.source = source
        self.searched = searched
        # A per-tenant column's searched values: its tokens depend on the tenant the statement's
        # WHERE names, so verify.plan computes them when the statement runs (until then: none).
        self.per_tenant = per_tenant


class EncryptedComparator(TypeDecorator.Comparator[Any]):
    """Routes ``==``, ``!=``, ``in_`` and ``not_in`` to the blind index; refuses the rest."""

    def operate(self, op: Any, *other: Any, **kwargs: Any) -> ColumnElement[Any]:
        if op in _HARMLESS:
            return super().operate(op, *other, **kwargs)
        if op in (operators.eq, operators.ne) and other and other[0] is None:
            return self.expr.is_(None) if op is operators.eq else self.expr.is_not(None)
        if op in (operators.eq, operators.ne) and other and isinstance(other[0], ColumnClause):
            # Column-to-column comparison: SQLAlchemy itself relies on it (mapper lookups compare
            # column objects), and it compares stored bytes, not values; left to SQL as is.
            return super().operate(op, *other, **kwargs)
        if op in _EQUALITY:
            return self._through_index(op, other[0])
        raise self._refusal(op)

    def reverse_operate(self, op: Any, other: Any, **kwargs: Any) -> ColumnElement[Any]:
        raise self._refusal(op)

    def _through_index(self, op: Any, other: Any) -> ColumnElement[Any]:
        type_: Encrypted[Any] = self.type  # type: ignore[assignment]
        table, column = type_._where()
        index_name = type_.index_name
        if type_.transitional or type_.from_ is not None:
            # Rows still in plaintext carry no index token: == would silently miss them.
            raise QueryNotSupportedError(
                f"{table}.{column} is being adopted (transitional=True): rows still in plaintext have "
                f"no blind-index token, so {_name(op)} would silently miss them; query by another "
                "column until encrypt-column and reindex have finished, then drop transitional=True"
            )
        if index_name is None:
            raise QueryNotSupportedError(
                f"{table}.{column} is encrypted without a blind index, so {_name(op)} cannot match "
                "its ciphertext (every value has a fresh nonce); declare it with searchable=True"
            )
        values = [other] if op in (operators.eq, operators.ne) else other
        if isinstance(values, ClauseElement) or not isinstance(values, Iterable) or isinstance(values, str):
            raise QueryNotSupportedError(
                f"{table}.{column}: compare an encrypted column with Python values, not with a SQL "
                "expression or subquery (the blind index is computed in the application)"
            )
        for value in values:
            if isinstance(value, ClauseElement):
                raise QueryNotSupportedError(
                    f"{table}.{column}: compare an encrypted column with Python values, not SQL expressions"
                )
        given = [v for v in values if v is not None]  # NULL is never indexed; == None is IS NULL
        per_tenant = tuple(given) if type_.tenant is not None else None
        tokens = (
            [] if per_tenant else [t for v in given for t in tokens_for(type_, get_keyring(type_.keyring), v)]
        )
        index: ColumnElement[Any] = self.expr.table.c[index_name]
        searched = frozenset(type_.index_plaintext(v) for v in given)
        negated = op in (operators.ne, operators.not_in_op)
        if not tokens and not per_tenant:
            return index.is_not(None) if negated else false()
        param = SearchTokens(tokens, index.type, self.expr, searched, per_tenant)
        return index.not_in(param) if negated else index.in_(param)

    def _refusal(self, op: Any) -> QueryNotSupportedError:
        table, column = self.type._where()  # type: ignore[attr-defined]
        return QueryNotSupportedError(
            f"{table}.{column} is encrypted: {_name(op)} cannot work on ciphertext "
            "(only ==, !=, in_, not_in through a blind index, and IS NULL are supported)"
        )


def tokens_for(type_: Encrypted[Any], keyring: Keyring, value: Any) -> list[bytes]:
    """Every token ``value`` may be stored under in ``type_``'s column, under ``keyring``."""
    plain = type_.index_plaintext(value)
    tokens: list[bytes] = []
    for place in type_.places():  # a renamed column (bound_as): rows not yet re-bound too
        index_records.check(keyring, place, type_.normalizer, writing=False)
        tokens.extend(keyring.blind_index_candidates(plain, place))
    return tokens


def _name(op: Any) -> str:
    name = getattr(op, "__name__", str(op))
    return name.removesuffix("_op").removesuffix("_")
