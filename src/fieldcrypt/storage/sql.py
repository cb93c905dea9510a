"""What an encrypted SQL column stores: the codec for its declared type and its column type per
dialect. Needs SQLAlchemy's types, so only the SQLAlchemy integration and the SQL rotation engine
import it (``fieldcrypt.storage`` itself does not).

These rules are written out in docs/sqlalchemy.md; change them only together with that document.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from sqlalchemy import types as sat
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect

from fieldcrypt import codecs
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.storage import Storage, stored_size

# Above this many bytes a MySQL/MariaDB column is LONGBLOB / LONGTEXT rather than VARBINARY /
# VARCHAR: a row's inline columns share a 65,535-byte limit, and a few wide columns would hit it.
MYSQL_INLINE_LIMIT = 2048

# Largest plaintext (bytes) of the fixed-size encodings in fieldcrypt.codecs, for column sizing.
_FIXED_SIZES: tuple[tuple[type[Any], int], ...] = (
    (sat.Boolean, 1),
    (sat.Float, 8),
    (sat.Integer, 20),  # "-9223372036854775808"
    # UTC offsets can carry seconds and microseconds (historic zones: Europe/Paris in 1850 was
    # +00:09:21), which isoformat writes out in full.
    (sat.DateTime, 42),  # "9999-12-31T23:59:59.999999-23:59:59.999999"
    (sat.Date, 10),
    (sat.Time, 31),  # "23:59:59.999999-23:59:59.999999"
    (sat.Interval, 32),  # "days:seconds:microseconds"
    (sat.Uuid, 36),
)


def _enum_codec(type_: Any) -> codecs.Codec[Any]:
    enum_class = type_.enum_class
    if enum_class is not None and issubclass(enum_class, enum.Enum):
        return codecs.named("enum", enum_class=enum_class)
    return codecs.named("enum", choices=type_.enums)


# Declared type class -> its codec (a codec, or a function of the type for parameterised ones).
# codec_for walks the type's MRO, so the most specific entry wins: Enum before String, Float
# before Numeric, BigInteger through Integer.
_CODECS: dict[type[Any], codecs.Codec[Any] | Callable[[Any], codecs.Codec[Any]]] = {
    sat.Enum: _enum_codec,
    sat.Boolean: codecs.BOOL,
    sat.Integer: codecs.INT,
    sat.Float: codecs.FLOAT,
    sat.Numeric: lambda t: codecs.DECIMAL if t.asdecimal else codecs.FLOAT,
    sat.DateTime: codecs.DATETIME,
    sat.Date: codecs.DATE,
    sat.Time: codecs.TIME,
    sat.Interval: codecs.TIMEDELTA,
    sat.Uuid: lambda t: codecs.UUID if t.as_uuid else codecs.TEXT,
    sat.JSON: codecs.JSON,
    sat.LargeBinary: codecs.BYTES,
    sat.String: codecs.TEXT,
}


def codec_for(type_: sat.TypeEngine[Any]) -> codecs.Codec[Any]:
    """The one codec for a declared column type (the nearest class in ``_CODECS``).

    Raises:
        ConfigurationError: a type fieldcrypt has no exact codec for.
    """
    for kind in type(type_).__mro__:
        found = _CODECS.get(kind)
        if found is not None:
            return found if isinstance(found, codecs.Codec) else found(type_)
    raise ConfigurationError(
        f"fieldcrypt cannot encrypt a {type(type_).__name__} column; supported: String, Integer, "
        "Numeric, Float, Boolean, Date, DateTime, Time, Interval, Uuid, Enum, JSON, LargeBinary"
    )


def max_plaintext_bytes(type_: sat.TypeEngine[Any]) -> int | None:
    """The largest plaintext a value of ``type_`` encodes to, or None when unbounded."""
    if isinstance(type_, sat.Enum) and type_.enum_class is not None:
        return 4 * max(len(m.name) for m in type_.enum_class)
    if isinstance(type_, sat.String):  # includes a string Enum (its length is the longest value)
        return None if type_.length is None else 4 * type_.length  # UTF-8: 4 bytes a character
    if isinstance(type_, sat.Numeric) and not isinstance(type_, sat.Float):
        if type_.asdecimal and type_.precision is not None:
            return type_.precision + 12  # digits plus sign, point and a possible exponent ("E-28")
        return None if type_.asdecimal else 8
    for kind, size in _FIXED_SIZES:
        if isinstance(type_, kind):
            return size
    return None


def stored_bytes(type_: sat.TypeEngine[Any]) -> int | None:
    """Largest stored value in bytes for binary storage."""
    return stored_size(max_plaintext_bytes(type_), "binary")


def stored_chars(type_: sat.TypeEngine[Any]) -> int | None:
    """Largest stored value in characters for text storage."""
    return stored_size(max_plaintext_bytes(type_), "text")


def column_type(type_: sat.TypeEngine[Any], storage: Storage, dialect: Dialect) -> sat.TypeEngine[Any]:
    """The database column type holding ciphertexts of ``type_`` on ``dialect``."""
    is_mysql = dialect.name in ("mysql", "mariadb")
    if storage == "text":
        chars = stored_chars(type_)
        if is_mysql:
            if chars is not None and chars <= MYSQL_INLINE_LIMIT:
                return mysql.VARCHAR(chars, charset="ascii", collation="ascii_bin")
            return mysql.LONGTEXT(charset="ascii", collation="ascii_bin")
        return sat.Text()
    if dialect.name == "postgresql":
        return postgresql.BYTEA()
    if is_mysql:
        size = stored_bytes(type_)
        if size is not None and size <= MYSQL_INLINE_LIMIT:
            return mysql.VARBINARY(size)
        return mysql.LONGBLOB()
    return sat.LargeBinary()


def index_column_type(byte_length: int = 32) -> sat.TypeEngine[bytes]:
    """A blind-index column: BYTEA / VARBINARY(32) / BLOB (keyrings keep 8 to 32 bytes)."""
    return sat.LargeBinary(byte_length).with_variant(mysql.VARBINARY(byte_length), "mysql", "mariadb")
