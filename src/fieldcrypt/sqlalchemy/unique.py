"""``unique=True`` across a blind-index rotation.

The database's unique index compares tokens, and between ``keys rotate --purpose blind_index``
and the end of the reindex a value has two: old rows carry its old-key token, new writes its
new-key token. The unique index would accept the same value twice. So while the keyring has more
than one active index key, an INSERT or UPDATE of a unique column first looks for another row
holding one of the value's older-key tokens (in the writer's own transaction) and raises
:class:`~fieldcrypt.errors.DuplicateValueError` if there is one. With a single index key nothing
is queried: the unique index alone is exact.

Limits (docs/sqlalchemy.md, "Unique columns during a blind-index rotation"): a process that has
not yet noticed the new key (up to ``refresh_every`` after the rotation) checks nothing, and two
transactions that write the same value at the same moment under different keys do not see each
other's uncommitted rows. The reindex then stops on the pair with the database's unique error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, literal, not_, select
from sqlalchemy.engine import Connection

from fieldcrypt.errors import DuplicateValueError
from fieldcrypt.place import Place
from fieldcrypt.registry import registered
from fieldcrypt.sqlalchemy.types import Encrypted, Sealed


def rotating(type_: Encrypted[Any]) -> bool:
    """Whether the column's keyring has more than one active index key (a rotation under way)."""
    keyring = registered().get(type_.keyring)
    if keyring is None:
        # Per-tenant columns are not checked: each tenant has its own index keys, rotated apart.
        return False  # not configured yet: the write itself fails with the registry's clear error
    return len(keyring.blind_index_candidates(b"", Place(*type_._where()))) > 1


def older_tokens(type_: Encrypted[Any], value: Any, tenant: Any = None) -> tuple[bytes, ...]:
    """``value``'s tokens under every active index key but the newest (unique columns only)."""
    if not type_.unique or value is None:
        return ()
    if type(value) is Sealed:
        return value.older_tokens
    place = Place(*type_._where())
    keyring = type_.row_keyring(tenant)
    return tuple(keyring.blind_index_candidates(type_.index_plaintext(value), place)[:-1])


def refuse_duplicate(
    conn: Connection,
    type_: Encrypted[Any],
    index_column: ColumnElement[Any],
    tokens: tuple[bytes, ...],
    *,
    rows_written: Any = None,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Raise if a row other than ``rows_written`` (an UPDATE's WHERE) holds one of ``tokens``."""
    if not tokens:
        return
    query = select(literal(1)).where(index_column.in_(tokens))  # FROM: the index column's table
    if rows_written is not None:
        query = query.where(not_(rows_written))  # the row being updated may hold the value itself
    if conn.execute(query.limit(1), dict(params or {})).first() is not None:
        raise DuplicateValueError(*type_._where())
