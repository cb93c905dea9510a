"""A SQL primary key as the row of a :class:`~fieldcrypt.place.Place`, canonical on both sides.

A row-bound value is sealed with the key as the application set it and opened with the key as
the database returns it. Those differ in ordinary use: a UUID key set as ``str``, an Integer key
set as ``"5"``, a Numeric key set as ``5`` (read back as ``Decimal('5.00')``), a ``CHAR(8)`` key
that PostgreSQL pads with spaces. Each would flush, and fail to decrypt in every later session.
So both sides pass the key through :func:`canonical_key`: the Python form the column's type reads
back (padding removed), or a :class:`ConfigurationError` at flush for a value that has none.
Needs SQLAlchemy's types, so only the SQLAlchemy integration and the SQL rotation engine use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import types as sat

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.place import RowKey


def canonical_key(types: Sequence[sat.TypeEngine[Any]], values: Sequence[Any], where: str) -> RowKey:
    """The row key of ``values`` (one per primary-key column, in key order), canonicalised.

    Raises:
        ConfigurationError: a part that the key column's type cannot read back as itself.
    """
    parts = [canonical_part(t, v, where) for t, v in zip(types, values, strict=True)]
    return parts[0] if len(parts) == 1 else tuple(parts)


# Key column types whose values no row key can hold exactly: a float is not an exact key (0.1 is
# not 0.1 once stored), and booleans, dates and times have no tag in docs/format.md.
_UNBINDABLE = (sat.Float, sat.Boolean, sat.Date, sat.DateTime, sat.Time, sat.Interval, sat.JSON)


def check_key_types(columns: Sequence[Any], where: str) -> None:
    """Refuse, at declaration, primary-key columns a row-bound value could not be bound to.

    Raises:
        ConfigurationError: naming the key column and its type.
    """
    for column in columns:
        type_ = column.type
        if isinstance(type_, _UNBINDABLE) or (isinstance(type_, sat.Numeric) and not type_.asdecimal):
            raise ConfigurationError(
                f"{where} is bound to its row, but its primary-key column {column.name} is "
                f"{type_!r}, which cannot be an exact row key; key the table by an Integer, "
                "Numeric (Decimal), String, Uuid or LargeBinary column, or set bind_row=False"
            )


def canonical_part(type_: sat.TypeEngine[Any], value: Any, where: str) -> Any:
    """One key part in the form the column's type returns it (see module docstring)."""
    if isinstance(value, bool):
        raise _refuse(where, type_, value)
    if isinstance(type_, sat.Uuid):
        try:
            parsed = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            raise _refuse(where, type_, value) from None
        return parsed if type_.as_uuid else str(parsed)
    if isinstance(type_, sat.Integer):
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise _refuse(where, type_, value)
    if isinstance(type_, sat.Numeric) and not isinstance(type_, sat.Float):
        try:
            return value if isinstance(value, Decimal) else Decimal(str(value))
        except InvalidOperation:
            raise _refuse(where, type_, value) from None
    if isinstance(type_, sat.Enum):
        return value
    if isinstance(type_, sat.String):
        if not isinstance(value, str):
            raise _refuse(where, type_, value)
        # Fixed-length CHAR: PostgreSQL pads to the length on read, MariaDB strips; neither keeps
        # trailing spaces meaningful, so the canonical form has none.
        return value.rstrip(" ") if isinstance(type_, sat.CHAR) else value
    return value


def _refuse(where: str, type_: sat.TypeEngine[Any], value: Any) -> ConfigurationError:
    # The key's type is named, never its value (a key can be personal data too).
    return ConfigurationError(
        f"{where} is bound to its row, but a primary-key value of type {type(value).__name__} does "
        f"not read back as itself from a {type_!r} key column; set the key as the column's Python "
        "type (e.g. uuid.UUID, int, Decimal)"
    )
