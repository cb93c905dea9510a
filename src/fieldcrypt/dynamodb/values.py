"""A DynamoDB AttributeValue <-> the plaintext bytes fieldcrypt encrypts, by the value's type.

These are exactly the bytes the PynamoDB adapter encrypts for the matching attribute, so a value
written by either can be read by the other (docs/dynamodb.md, "Item encryptor"):

======  ==========================================  ==================================
kind    plaintext bytes                             PynamoDB attribute
======  ==========================================  ==================================
S       the UTF-8 text                              UnicodeAttribute
N       the number's JSON text (``5``, ``-0.25``)   NumberAttribute
B       the bytes themselves                        BinaryAttribute
BOOL    one byte, 0x01 or 0x00                      BooleanAttribute
M, L    compact JSON of the typed value, binary     MapAttribute, ListAttribute
        as base64 (:func:`.wire.to_json`)
======  ==========================================  ==================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from fieldcrypt import codecs
from fieldcrypt import format as fmt
from fieldcrypt.dynamodb import wire
from fieldcrypt.errors import DamagedCiphertext

KINDS = ("S", "N", "B", "BOOL", "M", "L")

# A JSON number: what PynamoDB's NumberAttribute writes (json.dumps of an int or a float) and
# reads back (json.loads), so only this shape may be encrypted or accepted after decryption.
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def to_plaintext(kind: str, value: Mapping[str, Any]) -> bytes:
    """The bytes encrypted for ``value`` (one AttributeValue, e.g. ``{"S": "123-45-6789"}``).

    Raises:
        TypeError: ``value`` is not an AttributeValue of ``kind``.
    """
    if kind == "S" and type(value) is dict and len(value) == 1 and type(raw := value.get("S")) is str:
        return codecs.TEXT.to_bytes(raw)  # the common case, without the general checks below
    if (type(value) is not dict and not isinstance(value, Mapping)) or len(value) != 1 or kind not in value:
        got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
        raise TypeError(f"expected a DynamoDB {kind} value such as {{{kind!r}: ...}}, got {got}")
    raw = value[kind]
    if kind == "S":
        return codecs.TEXT.to_bytes(raw)
    if kind == "N":
        return number_text(raw).encode("ascii")
    if kind == "B":
        if not isinstance(raw, bytes | bytearray):
            raise TypeError(f"expected bytes in a B value, got {type(raw).__name__}")
        return bytes(raw)
    if kind == "BOOL":
        return codecs.BOOL.to_bytes(raw)
    if kind in ("M", "L"):
        expected = dict if kind == "M" else list
        if not isinstance(raw, expected):
            raise TypeError(f"expected a {expected.__name__} in an {kind} value, got {type(raw).__name__}")
        return codecs.JSON.to_bytes(wire.to_json({kind: raw}))
    raise TypeError(f"cannot encrypt a DynamoDB {kind} value; encrypted values are {', '.join(KINDS)}")


def from_plaintext(kind: str, data: bytes) -> dict[str, Any]:
    """The AttributeValue a decrypted plaintext stands for (the inverse of :func:`to_plaintext`).

    Raises:
        ValueError: the bytes are not a value of ``kind`` (an authentic value of another type).
    """
    if kind == "S":
        return {"S": codecs.TEXT.from_bytes(data)}
    if kind == "N":
        text = data.decode("ascii")
        if not _JSON_NUMBER.fullmatch(text):
            raise ValueError("not a number")
        return {"N": text}
    if kind == "B":
        return {"B": data}
    if kind == "BOOL":
        return {"BOOL": codecs.BOOL.from_bytes(data)}
    typed = wire.from_json(codecs.JSON.from_bytes(data))
    if kind not in typed:
        raise ValueError(f"not an {kind} value")
    return dict(typed)


def ciphertext_in(kind: str, stored: Mapping[str, Any]) -> bytes | None:
    """The v1 bytes a stored attribute holds, or None when it is (pre-adoption) plaintext.

    The one rule adoption (:mod:`fieldcrypt.dynamodb.adopt`) and the transitional read modes
    share, so they never disagree about which items are done. An encrypted value is always a
    ``B``; for any other ``kind`` every ``B`` is a ciphertext (and must decrypt). A ``B`` plaintext
    is told apart by the v1 shape, as SQL's binary storage is (:mod:`fieldcrypt.adoption`).

    Raises:
        DamagedCiphertext: a ``B`` plaintext that begins with the v1 version byte but is too short
            to be a ciphertext (a truncated one): refused, never passed through as plaintext.
    """
    raw = stored.get("B") if len(stored) == 1 else None
    if not isinstance(raw, bytes | bytearray):
        return None
    blob = bytes(raw)
    if kind != "B" or fmt.looks_like_ciphertext(blob):
        return blob
    if blob[:1] == bytes((fmt.VERSION_1,)):
        raise DamagedCiphertext
    return None


def number_text(raw: object) -> str:
    """A DynamoDB number as JSON text: kept as given when it already is, else normalised.

    Raises:
        TypeError: not a finite number.
    """
    if isinstance(raw, str) and _JSON_NUMBER.fullmatch(raw):
        return raw  # exact: no float rounding of DynamoDB's 38 significant digits
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise TypeError(f"expected a number string in an N value, got {type(raw).__name__}")
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise TypeError(f"{raw!r} is not a DynamoDB number") from None
    text = str(number)
    if not number.is_finite() or not _JSON_NUMBER.fullmatch(text):
        raise TypeError(f"{raw!r} is not a finite DynamoDB number")
    return text
