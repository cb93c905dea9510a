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
from decimal import Decimal
from typing import Any, Generic, TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


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

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TextCodec(Codec[str]):
    python_type = str
    name = "text"

    def to_bytes(self, value: str) -> bytes:
        return self.check(value).encode("utf-8")

    def from_bytes(self, data: bytes) -> str:
        return data.decode("utf-8")


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
        return self.check(value).isoformat().encode("ascii")

    def from_bytes(self, data: bytes) -> dt.datetime:
        return dt.datetime.fromisoformat(data.decode("ascii"))


class TimeCodec(Codec[dt.time]):
    python_type = dt.time
    name = "time"

    def to_bytes(self, value: dt.time) -> bytes:
        return self.check(value).isoformat().encode("ascii")

    def from_bytes(self, data: bytes) -> dt.time:
        return dt.time.fromisoformat(data.decode("ascii"))


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


class JsonCodec(Codec[Any]):
    """Any JSON-serialisable value (dicts, lists, str, numbers, bools, None), as compact UTF-8."""

    python_type = object
    name = "json"

    def to_bytes(self, value: Any) -> bytes:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"value is not JSON-serialisable: {exc}") from None
        return text.encode("utf-8")

    def from_bytes(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


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
