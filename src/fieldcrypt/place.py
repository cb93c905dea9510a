"""Where a value lives: the part of the associated data that binds a ciphertext to its place.

A :class:`Place` names a table and column (or DynamoDB table and attribute) and, optionally, the
row's primary key. Its canonical encoding goes into the AEAD associated data, never into KMS
(CloudTrail logs the KMS encryption context in clear; a row identity must not appear there).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from fieldcrypt.errors import ConfigurationError

RowKeyPart = str | int | bytes | uuid.UUID | Decimal
RowKey = RowKeyPart | Sequence[RowKeyPart]


def _part(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack(">I", len(body)) + body


def encode_row_key(row: RowKey) -> bytes:
    """Canonical, injective bytes for a primary key (one value or a tuple of values).

    Each component is typed and length-prefixed, so ``("a", "bc")`` and ``("ab", "c")`` or
    ``1`` and ``"1"`` never encode alike.
    """
    kind = type(row)
    if kind is int or kind is str:  # the common one-column keys, without the general loop
        body = str(row).encode("ascii") if kind is int else row.encode("utf-8")  # type: ignore[union-attr]
        return (b"\x00\x01i" if kind is int else b"\x00\x01s") + struct.pack(">I", len(body)) + body
    parts = (row,) if isinstance(row, str | int | bytes | uuid.UUID | Decimal) else tuple(row)
    out = [struct.pack(">H", len(parts))]
    for value in parts:
        if isinstance(value, bool):
            raise ConfigurationError("a boolean cannot be part of a row key")
        if isinstance(value, str):
            out.append(_part(b"s", value.encode("utf-8")))
        elif isinstance(value, int):
            out.append(_part(b"i", str(value).encode("ascii")))
        elif isinstance(value, bytes):
            out.append(_part(b"b", value))
        elif isinstance(value, uuid.UUID):
            out.append(_part(b"u", value.bytes))
        elif isinstance(value, Decimal):
            out.append(_part(b"d", decimal_key(value)))
        else:
            raise ConfigurationError(
                f"cannot bind a ciphertext to a row key of type {type(value).__name__}; "
                "use str, int, bytes, UUID or Decimal key columns"
            )
    return b"".join(out)


def decimal_key(value: Decimal) -> bytes:
    """The ``d`` body of a Decimal key: exact, whatever the thread's decimal context.

    0.1 wrote ``str(value.normalize())``, which rounds to the current context's precision (28
    digits by default), so two Numeric(38) keys differing past the 28th digit shared a place, and
    a thread with another context bound the same key elsewhere. The digits are taken as they are
    instead: for every value the old rule kept exact, the bytes are the same (docs/format.md).

    Raises:
        ConfigurationError: an infinity or NaN, which no key column holds.
    """
    if not value.is_finite():
        raise ConfigurationError("a row key cannot be an infinite or NaN Decimal")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if not any(digits):
        digits, exponent = (0,), 0  # normalize() gives 0 (or -0) whatever the scale
    else:
        end = len(digits)
        while digits[end - 1] == 0:
            end -= 1
        digits, exponent = digits[:end], exponent + len(digits) - end
    # Building from the tuple is exact; str() reads only the context's `capitals` flag, which
    # upper() pins (the rest of the string is digits, a sign and a point).
    return str(Decimal((sign, digits, exponent))).upper().encode("ascii")


@dataclass(frozen=True, slots=True, init=False)
class Place:
    """A table, a column and optionally a row: what a ciphertext is bound to.

    The associated-data encoding is computed once, at construction: integrations keep one
    ``Place`` per column (or build one per row), and the hot path only concatenates bytes.
    """

    table: str
    column: str
    row: RowKey | None = None
    encoded: bytes = field(init=False, repr=False, compare=False)

    def __init__(self, table: str, column: str, row: RowKey | None = None) -> None:
        head = _heads.get((table, column))
        if head is None:
            head = _head(table, column)
        # A frozen dataclass's own __init__ sets each field through object.__setattr__; the
        # slots' descriptors do the same at a third of the cost (one Place per row-bound value).
        _set_table(self, table)
        _set_column(self, column)
        _set_row(self, row)
        _set_encoded(self, head + (b"\x00" if row is None else b"\x01" + encode_row_key(row)))

    def encode(self) -> bytes:
        return self.encoded

    def describe_row(self) -> str | None:
        """A short description of the row for error messages (the key, never a value)."""
        if self.row is None:
            return None
        if isinstance(self.row, str | int | bytes | uuid.UUID | Decimal):
            return repr(self.row)
        return repr(tuple(self.row))

    def where(self) -> dict[str, str | None]:
        return {"table": self.table, "column": self.column, "row": self.describe_row()}


_set_table = Place.__dict__["table"].__set__
_set_column = Place.__dict__["column"].__set__
_set_row = Place.__dict__["row"].__set__
_set_encoded = Place.__dict__["encoded"].__set__

# Row-bound places are built per value; the table/column part of their encoding is not.
_heads: dict[tuple[str, str], bytes] = {}


def _head(table: str, column: str) -> bytes:
    if not table or not column:
        raise ConfigurationError("a Place needs a non-empty table and column name")
    table_bytes, column_bytes = table.encode("utf-8"), column.encode("utf-8")
    head = (
        struct.pack(">H", len(table_bytes))
        + table_bytes
        + struct.pack(">H", len(column_bytes))
        + column_bytes
    )
    if len(_heads) >= 4096:
        _heads.clear()
    _heads[(table, column)] = head
    return head


def old_names(bound_as: object, noun: str = "column") -> tuple[str, str] | None:
    """A ``bound_as`` option checked: None, or the ``(old_table, old_<noun>)`` a renamed column
    or attribute's older values are still bound to (the one check of every integration).

    Raises:
        ConfigurationError: anything but a tuple of two non-empty names.
    """
    if bound_as is None:
        return None
    if not (
        isinstance(bound_as, tuple) and len(bound_as) == 2 and all(isinstance(p, str) and p for p in bound_as)
    ):
        raise ConfigurationError(
            f"bound_as must be a (table, {noun}) tuple of the {noun}'s old names, not {bound_as!r}"
        )
    return (bound_as[0], bound_as[1])
