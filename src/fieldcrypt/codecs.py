"""Named codecs between Python values and the plaintext bytes that get encrypted.

Explicit over clever: each encrypted column or attribute has exactly one codec, chosen from its
declared type; a value of another type is refused (``TypeError`` naming both types), never
coerced. Encodings are canonical text where one exists (ISO 8601, decimal strings), so a value
can be decrypted and read by hand with docs/format.md.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import struct
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Generic, TypeVar

from fieldcrypt.errors import ConfigurationError, ValueTypeError
from fieldcrypt.place import Place

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
W = TypeVar("W", dt.datetime, dt.time)

# What the standard parsers raise on bytes of the wrong shape: UnicodeDecodeError and JSON errors
# are ValueErrors, decimal.InvalidOperation an ArithmeticError, an unknown enum name a KeyError.
_DECODE_ERRORS = (ValueError, KeyError, IndexError, TypeError, ArithmeticError, struct.error)


class Codec(ABC, Generic[T]):
    """Turns a ``T`` into bytes and back. ``from_bytes(to_bytes(v)) == v`` with the same type."""

    python_type: type[Any] = object
    name = "codec"

    def check(self, value: object) -> T:
        # bool is an int subclass: an int column must not accept True silently (and vice versa).
        if not isinstance(value, self.python_type) or (
            isinstance(value, bool) and self.python_type is not bool and self.python_type is not object
        ):
            raise TypeError(f"expected {self.python_type.__name__}, got {type(value).__name__}")
        return value  # type: ignore[no-any-return]

    @abstractmethod
    def to_bytes(self, value: T) -> bytes: ...

    @abstractmethod
    def from_bytes(self, data: bytes) -> T: ...

    def decode(self, data: bytes, place: Place) -> T:
        """``from_bytes`` for a decrypted (authentic) value read at ``place``.

        Raises:
            ValueTypeError: the bytes are not a value of this codec's type (the column's declared
                type changed after the value was written); names the place, never the value.
        """
        try:
            return self.from_bytes(data)
        except _DECODE_ERRORS:
            raise ValueTypeError(self.name, **place.where()) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TextCodec(Codec[str]):
    python_type = str
    name = "text"

    def to_bytes(self, value: str) -> bytes:
        if type(value) is str:  # runs per value written: the exact type needs no further check
            return value.encode("utf-8")
        return self.check(value).encode("utf-8")

    def from_bytes(self, data: bytes) -> str:
        return data.decode("utf-8")

    def decode(self, data: bytes, place: Place) -> str:
        # Codec.decode without the extra call: text is the most common encrypted type.
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueTypeError(self.name, **place.where()) from None


class BytesCodec(Codec[bytes]):
    python_type = bytes
    name = "bytes"

    def to_bytes(self, value: bytes) -> bytes:
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        return self.check(value)

    def from_bytes(self, data: bytes) -> bytes:
        return data


class IntCodec(Codec[int]):
    python_type = int
    name = "int"

    def to_bytes(self, value: int) -> bytes:
        return str(self.check(value)).encode("ascii")

    def from_bytes(self, data: bytes) -> int:
        return int(data.decode("ascii"))


class DecimalCodec(Codec[Decimal]):
    """Exact: the decimal string keeps every digit and the scale (``Decimal("1.10")`` stays)."""

    python_type = Decimal
    name = "decimal"

    def to_bytes(self, value: Decimal) -> bytes:
        return str(self.check(value)).encode("ascii")

    def from_bytes(self, data: bytes) -> Decimal:
        return Decimal(data.decode("ascii"))


class FloatCodec(Codec[float]):
    """IEEE 754 binary64, big-endian: exact, including -0.0, inf and nan."""

    python_type = float
    name = "float"

    def to_bytes(self, value: float) -> bytes:
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # an int is a float's exact subset; say so rather than refuse
        return struct.pack(">d", self.check(value))

    def from_bytes(self, data: bytes) -> float:
        return float(struct.unpack(">d", data)[0])


class BoolCodec(Codec[bool]):
    python_type = bool
    name = "bool"

    def to_bytes(self, value: bool) -> bytes:
        return b"\x01" if self.check(value) else b"\x00"

    def from_bytes(self, data: bytes) -> bool:
        if data not in (b"\x00", b"\x01"):
            raise ValueError("not a boolean")
        return data == b"\x01"


class DateCodec(Codec[dt.date]):
    python_type = dt.date
    name = "date"

    def to_bytes(self, value: dt.date) -> bytes:
        if isinstance(value, dt.datetime):
            raise TypeError("expected date, got datetime")
        return self.check(value).isoformat().encode("ascii")

    def from_bytes(self, data: bytes) -> dt.date:
        return dt.date.fromisoformat(data.decode("ascii"))


class DateTimeCodec(Codec[dt.datetime]):
    """ISO 8601: a naive value stays naive, an aware one keeps its exact UTC offset."""

    python_type = dt.datetime
    name = "datetime"

    def to_bytes(self, value: dt.datetime) -> bytes:
        return _unfolded(self.check(value)).isoformat().encode("ascii")

    def from_bytes(self, data: bytes) -> dt.datetime:
        return dt.datetime.fromisoformat(data.decode("ascii"))


class TimeCodec(Codec[dt.time]):
    python_type = dt.time
    name = "time"

    def to_bytes(self, value: dt.time) -> bytes:
        return _unfolded(self.check(value)).isoformat().encode("ascii")

    def from_bytes(self, data: bytes) -> dt.time:
        return dt.time.fromisoformat(data.decode("ascii"))


def _unfolded(value: W) -> W:
    # ISO 8601 has no fold. An aware value keeps its meaning through its UTC offset (which the
    # fold already chose); a naive one would come back as the *first* of two equal wall times.
    if value.fold and value.utcoffset() is None:
        raise TypeError(
            "a naive value with fold=1 (the second of two equal wall-clock times) cannot be stored "
            "exactly; store it aware (with its UTC offset) or in UTC"
        )
    return value


class TimedeltaCodec(Codec[dt.timedelta]):
    python_type = dt.timedelta
    name = "timedelta"

    def to_bytes(self, value: dt.timedelta) -> bytes:
        v = self.check(value)
        return f"{v.days}:{v.seconds}:{v.microseconds}".encode("ascii")

    def from_bytes(self, data: bytes) -> dt.timedelta:
        days, seconds, micros = (int(p) for p in data.decode("ascii").split(":"))
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)


class UuidCodec(Codec[uuid.UUID]):
    python_type = uuid.UUID
    name = "uuid"

    def to_bytes(self, value: uuid.UUID) -> bytes:
        return self.check(value).bytes

    def from_bytes(self, data: bytes) -> uuid.UUID:
        return uuid.UUID(bytes=data)


class EnumCodec(Codec[E]):
    """A Python enum by member *name* (stable when values are reordered or renumbered)."""

    name = "enum"

    def __init__(self, enum_class: type[E]) -> None:
        if not (isinstance(enum_class, type) and issubclass(enum_class, enum.Enum)):
            raise TypeError("EnumCodec needs a Python Enum class")
        self.python_type = enum_class
        self.enum_class = enum_class

    def to_bytes(self, value: E) -> bytes:
        return self.check(value).name.encode("utf-8")

    def from_bytes(self, data: bytes) -> E:
        return self.enum_class[data.decode("utf-8")]

    def __repr__(self) -> str:
        return f"EnumCodec({self.enum_class.__qualname__})"


class ChoiceCodec(Codec[str]):
    """One of a fixed set of strings (an Enum column declared by its values, not a Python enum).

    Stored as the string's UTF-8 bytes, exactly as :class:`TextCodec` stores it, so a column can
    move between the two without re-encryption; a string outside the set is refused both ways.
    """

    python_type = str
    name = "enum"

    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = tuple(choices)
        if not self.choices or not all(isinstance(c, str) for c in self.choices):
            raise TypeError("ChoiceCodec needs the Enum's string values")
        self._allowed = frozenset(self.choices)

    def to_bytes(self, value: str) -> bytes:
        if self.check(value) not in self._allowed:
            raise TypeError(f"expected one of the Enum's {len(self.choices)} values")
        return value.encode("utf-8")

    def from_bytes(self, data: bytes) -> str:
        value = data.decode("utf-8")
        if value not in self._allowed:
            raise ValueError("not one of the Enum's values")
        return value

    def __repr__(self) -> str:
        return f"ChoiceCodec({self.choices!r})"


class JsonCodec(Codec[Any]):
    """Any JSON-serialisable value (dicts, lists, str, numbers, bools, None), as compact UTF-8."""

    python_type = object
    name = "json"

    def to_bytes(self, value: Any) -> bytes:
        _check_json(value)
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"value is not JSON-serialisable: {exc}") from None
        return text.encode("utf-8")

    def from_bytes(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


def _check_json(value: Any) -> None:
    # json.dumps would write a tuple as a list and an int key as a string: the value read back
    # would differ from the one written. Refused instead, before anything is encrypted.
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"JSON object keys must be str, not {type(key).__name__} (it would read back as str)"
                )
            _check_json(item)
    elif isinstance(value, list):
        for item in value:
            _check_json(item)
    elif isinstance(value, tuple):
        raise TypeError("JSON has no tuples (a tuple would read back as a list); store a list")


TEXT = TextCodec()
BYTES = BytesCodec()
INT = IntCodec()
DECIMAL = DecimalCodec()
FLOAT = FloatCodec()
BOOL = BoolCodec()
DATE = DateCodec()
DATETIME = DateTimeCodec()
TIME = TimeCodec()
TIMEDELTA = TimedeltaCodec()
UUID = UuidCodec()
JSON = JsonCodec()

_BY_NAME: dict[str, Codec[Any]] = {
    c.name: c for c in (TEXT, BYTES, INT, DECIMAL, FLOAT, BOOL, DATE, DATETIME, TIME, TIMEDELTA, UUID, JSON)
}
NAMES: tuple[str, ...] = tuple(sorted([*_BY_NAME, "enum"]))


def named(
    name: str, *, enum_class: type[enum.Enum] | None = None, choices: Iterable[str] | None = None
) -> Codec[Any]:
    """The codec called ``name`` (one of :data:`NAMES`): the one registry of codecs by name.

    ``"enum"`` needs what its values are: ``enum_class`` (a Python enum, stored by member name)
    or ``choices`` (the string values of an Enum declared without a class).

    Raises:
        ConfigurationError: an unknown name, or ``"enum"`` without its class or values.
    """
    if name == "enum":
        if enum_class is not None:
            return EnumCodec(enum_class)
        if choices is not None:
            return ChoiceCodec(choices)
        raise ConfigurationError(
            "the enum codec needs the enum's class or values: declare the column's type "
            "(Encrypted(Enum(MyEnum))) or read it from the models (--metadata module:Base)"
        )
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigurationError(f"unknown codec {name!r}; choose one of {', '.join(NAMES)}") from None
