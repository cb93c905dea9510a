"""How each wrapped PynamoDB attribute's values become plaintext bytes, through a named codec.

Scalars use the natural codec of :mod:`fieldcrypt.codecs` (an SSN encrypts its UTF-8 text, so a
value can be decrypted by hand with docs/format.md). Maps and lists keep PynamoDB's own typed
form: the inner attribute serialises the value to a DynamoDB AttributeValue, which becomes bytes
through :mod:`fieldcrypt.dynamodb.values` (compact JSON, binary as base64), so nested typed maps,
binary and sets come back exactly. For the attributes with a DynamoDB counterpart (Unicode,
Number, Binary, Boolean, Map, List) the bytes are those of ``fieldcrypt.dynamodb.ItemEncryptor``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pynamodb.attributes import (
    Attribute,
    BinaryAttribute,
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from fieldcrypt import codecs
from fieldcrypt.dynamodb import values
from fieldcrypt.errors import ConfigurationError

SUPPORTED = (
    "UnicodeAttribute, NumberAttribute, BinaryAttribute, BooleanAttribute, UTCDateTimeAttribute, "
    "JSONAttribute, MapAttribute (raw or typed) and ListAttribute"
)


class ValueCodec:
    """Python value <-> plaintext bytes for one inner attribute. ``codec`` names the core codec."""

    def __init__(self, codec: codecs.Codec[Any]) -> None:
        self.codec = codec

    def to_bytes(self, value: Any) -> bytes:
        return self.codec.to_bytes(value)

    def from_bytes(self, data: bytes) -> Any:
        return self.codec.from_bytes(data)


class NumberCodec(ValueCodec):
    """int or float, as JSON text: ``5`` stays an int and ``5.5`` a float, as NumberAttribute keeps them."""

    def __init__(self) -> None:
        super().__init__(codecs.JSON)

    def to_bytes(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected int or float, got {type(value).__name__}")
        return self.codec.to_bytes(value)


class UtcDateTimeCodec(ValueCodec):
    """As UTCDateTimeAttribute: a naive datetime is taken as UTC; values come back aware, in UTC."""

    def __init__(self) -> None:
        super().__init__(codecs.DATETIME)

    def to_bytes(self, value: Any) -> bytes:
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return self.codec.to_bytes(aware.astimezone(dt.UTC))


class TypedValueCodec(ValueCodec):
    """Maps and lists: the inner attribute's own DynamoDB form, as JSON (see module docstring)."""

    def __init__(self, inner: MapAttribute[Any, Any] | ListAttribute[Any]) -> None:
        super().__init__(codecs.JSON)
        self.inner = inner

    def to_bytes(self, value: Any) -> bytes:
        if isinstance(self.inner, ListAttribute) and not isinstance(value, list):
            raise TypeError(f"expected list, got {type(value).__name__}")
        if isinstance(self.inner, MapAttribute) and not isinstance(value, dict | MapAttribute):
            raise TypeError(f"expected dict or {type(self.inner).__name__}, got {type(value).__name__}")
        kind = self.inner.attr_type
        return values.to_plaintext(kind, {kind: self.inner.serialize(value, null_check=True)})

    def from_bytes(self, data: bytes) -> Any:
        kind = self.inner.attr_type
        return self.inner.deserialize(values.from_plaintext(kind, data)[kind])  # type: ignore[no-untyped-call]


def codec_for(inner: Attribute[Any]) -> ValueCodec:
    """The codec for a wrapped attribute; exact classes only, since a subclass may serialise
    differently and silently encrypting something else would be worse than refusing.

    Raises:
        ConfigurationError: an attribute type that cannot be encrypted (sets, versions, TTLs...).
    """
    kind = type(inner)
    if isinstance(inner, VersionAttribute | TTLAttribute):
        raise ConfigurationError(f"{kind.__name__} cannot be encrypted: DynamoDB must read it in clear")
    if isinstance(inner, MapAttribute | ListAttribute):
        return TypedValueCodec(inner)
    simple: dict[type[Any], ValueCodec] = {
        UnicodeAttribute: ValueCodec(codecs.TEXT),
        BinaryAttribute: ValueCodec(codecs.BYTES),
        BooleanAttribute: ValueCodec(codecs.BOOL),
        JSONAttribute: ValueCodec(codecs.JSON),
    }
    if kind in simple:
        return simple[kind]
    if kind is NumberAttribute:
        return NumberCodec()
    if kind is UTCDateTimeAttribute:
        return UtcDateTimeCodec()
    raise ConfigurationError(f"cannot encrypt a {kind.__name__}: EncryptedAttribute wraps {SUPPORTED}")
