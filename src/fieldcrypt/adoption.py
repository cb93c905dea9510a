"""Ciphertext or plaintext? The one rule for a column that is being adopted.

While ``encrypt_column`` runs, a column holds both its old plaintext and v1 ciphertext. The batch
engine (which values still need encrypting, what ``status`` counts), ``fieldcrypt.rotation.
transitional.read`` and ``Encrypted(..., transitional=True)`` all decide with this module, so the
application and the engine never disagree about which rows are done.

What a plaintext value looks like once the column is widened (fieldcrypt.rotation.schema):

- binary storage, PostgreSQL: BYTEA holding the UTF-8 bytes of the value's text form
  (``convert_to(col::text, 'UTF8')``): ``b"123-45-6789"``, ``b"41"``, ``b"2024-01-31"``, ``b"true"``;
- binary storage, MariaDB: BLOB holding the same bytes (a BOOLEAN is ``b"1"``);
- SQLite: nothing is altered; each value keeps its storage class (``str``, ``int``, ``float``);
- text storage: a character column, the value as ``str``.

The rule: a value whose bytes (binary storage) or base64 decoding (text storage) have the v1 shape
(version byte 1, at least ``format.OVERHEAD`` bytes) is a ciphertext and must decrypt; anything
else is plaintext, read back through the codec from the database's text form. A "plaintext" that
begins with the version byte is a damaged ciphertext (text never starts with U+0001), so it is
refused rather than passed through.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fieldcrypt import codecs
from fieldcrypt import format as fmt
from fieldcrypt.errors import ConfigurationError, DamagedCiphertext

__all__ = ["DamagedCiphertext", "ciphertext_in", "ciphertext_in_other_storage", "plaintext_bytes"]

_VERSION_CHAR = chr(fmt.VERSION_1)
_BASE64_OF_VERSION = fmt.to_text(bytes((fmt.VERSION_1, 0, 0)))[0]


def ciphertext_in(stored: object, *, text: bool) -> bytes | None:
    """The v1 bytes ``stored`` holds, or None when it is (pre-adoption) plaintext.

    Args:
        stored: the value as the DB-API returned it (bytes, memoryview, str, int...).
        text: the column uses text storage (standard base64 of the v1 bytes).
    """
    if text:
        if not isinstance(stored, str):
            return None
        try:
            blob = fmt.from_text(stored)
        except fmt.MalformedCiphertext:
            return None
    else:
        blob = _as_bytes(stored)
    return blob if fmt.looks_like_ciphertext(blob) else None


def ciphertext_in_other_storage(stored: object, *, text: bool) -> bytes | None:
    """The v1 bytes ``stored`` holds in the *other* storage form, if it parses as one.

    A column written with ``storage="text"`` holds base64 that a binary-storage reader would take
    for plaintext (and the other way round): a caller that finds one must stop, not count it as
    plaintext or encrypt it a second time. The value is parsed (base64, then the v1 header), not
    guessed from its look.
    """
    if not text:
        if isinstance(stored, bytes | bytearray | memoryview):
            try:
                stored = bytes(stored).decode("ascii")
            except UnicodeDecodeError:
                return None
        if not isinstance(stored, str) or stored[:1] != _BASE64_OF_VERSION:
            return None
        return ciphertext_in(stored, text=True)
    if isinstance(stored, bytes | bytearray | memoryview):
        return ciphertext_in(stored, text=False)
    return None


def plaintext_bytes(codec: codecs.Codec[Any], stored: object) -> bytes:
    """Codec bytes of a plaintext value, read as its Python type or as the database's text form.

    After the in-place widening a plaintext column holds the database's text form of each value;
    it is parsed back to the codec's type, so the value reads (and later encrypts) as exactly what
    the application would have written.

    Raises:
        DamagedCiphertext: the value begins with the v1 version byte (a truncated ciphertext).
        ConfigurationError: the text is not a valid value for the codec.
    """
    if codec.python_type is not bytes and _starts_like_ciphertext(stored):
        raise DamagedCiphertext
    if isinstance(stored, bytes | bytearray | memoryview) and codec.name == "uuid" and len(stored) == 16:
        # MariaDB's UUID type widened to BLOB keeps its 16 raw bytes (never 32 or 36 characters)
        stored = uuid.UUID(bytes=bytes(stored))
    elif isinstance(stored, bytes | bytearray | memoryview) and codec.python_type is not bytes:
        stored = bytes(stored).decode("utf-8")
    elif not isinstance(stored, str | codec.python_type) or (
        isinstance(stored, bool) and codec.python_type is not bool
    ):
        # Read raw, SQLite gives a BOOLEAN as 1 and a NUMERIC as a float: go through the text form.
        stored = str(stored)
    if isinstance(stored, str) and codec.python_type is not str:
        stored = _parse_text(codec, stored)
    return codec.to_bytes(stored)


def _starts_like_ciphertext(stored: object) -> bool:
    if isinstance(stored, str):
        return stored[:1] == _VERSION_CHAR
    if isinstance(stored, bytes | bytearray | memoryview):
        return bytes(stored[:1]) == bytes((fmt.VERSION_1,))
    return False


def _as_bytes(stored: object) -> bytes:
    if isinstance(stored, bytes):
        return stored
    if isinstance(stored, bytearray | memoryview):
        return bytes(stored)
    if isinstance(stored, str):  # SQLite keeps a value's own storage class: plaintext stays TEXT
        return stored.encode("utf-8")
    return str(stored).encode("utf-8")


def _parse_bool(text: str) -> bool:
    return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}[text.strip().lower()]


_PARSERS: dict[str, Callable[[str], object]] = {
    "int": int,
    "decimal": Decimal,
    "float": float,
    "bool": _parse_bool,
    "date": dt.date.fromisoformat,
    "datetime": dt.datetime.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "json": json.loads,
    "bytes": lambda t: t.encode("utf-8"),
}


def _parse_text(codec: codecs.Codec[Any], text: str) -> object:
    parser = _PARSERS.get(codec.name)
    if codec.name == "enum":  # SQLAlchemy's Enum stores member names, which is what the codec reads
        parser = lambda t: codec.from_bytes(t.encode("utf-8"))  # noqa: E731
    if parser is None:
        raise ConfigurationError(f"codec {codec.name!r} cannot read a plaintext value from its text form")
    try:
        return parser(text)
    except (ValueError, KeyError, ArithmeticError) as exc:  # Decimal("x"): InvalidOperation
        raise ConfigurationError(
            f"a plaintext value is not a valid {codec.name}: {type(exc).__name__}"
        ) from None
