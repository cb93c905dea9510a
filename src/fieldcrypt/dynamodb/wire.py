"""DynamoDB wire values, without PynamoDB: the item-key encoding and a JSON form of typed values.

The PynamoDB path (:class:`~fieldcrypt.pynamodb.EncryptedModel`) and the raw-item paths
(:class:`~fieldcrypt.dynamodb.ItemEncryptor`, and the re-encryption job and ``status``, which read
items with the low-level boto3 client) all bind a ciphertext to its item through :func:`row_key`,
so they produce identical associated data (docs/dynamodb.md).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.place import RowKey, RowKeyPart

KeyValue = Mapping[str, Any]  # one DynamoDB AttributeValue, e.g. {"S": "p-1"} or {"N": "42"}


def key_part(value: KeyValue) -> RowKeyPart:
    """One key attribute as a row-key component: S -> str, N -> Decimal, B -> bytes.

    Numbers become :class:`~decimal.Decimal`, which ``Place`` encodes normalised, because
    DynamoDB normalises numbers too: ``5``, ``5.0`` and ``5E0`` are one key, so they must bind
    alike whether the writer held an int or the reader got the string ``"5"`` back.
    """
    if type(value) is dict and len(value) == 1 and type(raw := value.get("S")) is str:
        return raw  # the common string key, without the general checks below (runs per item)
    if len(value) != 1:
        raise ConfigurationError(f"a DynamoDB key value has exactly one type, got {sorted(value)}")
    ((kind, raw),) = value.items()
    if kind == "S" and isinstance(raw, str):
        return raw
    if kind == "N" and isinstance(raw, str | int | Decimal) and not isinstance(raw, bool):
        try:
            return Decimal(raw)
        except InvalidOperation:
            raise ConfigurationError(f"{raw!r} is not a DynamoDB number") from None
    if kind == "B" and isinstance(raw, bytes | bytearray):
        return bytes(raw)
    raise ConfigurationError(f"DynamoDB key attributes are S, N or B; got {kind} ({type(raw).__name__})")


def row_key(item: Mapping[str, KeyValue], key_names: Sequence[str]) -> RowKey:
    """The row part of a ``Place`` for an item: ``hash`` or ``(hash, range)`` in schema order.

    Raises:
        ConfigurationError: a key attribute is missing (for example a projection without keys).
    """
    missing = [name for name in key_names if name not in item]
    if missing:
        raise ConfigurationError(
            f"the item lacks its key attribute(s) {missing}: encrypted attributes are bound to the "
            "item's key, so read them together with the key (include it in attributes_to_get)"
        )
    # A one-part tuple encodes exactly like the bare value; the bare value reads better in errors.
    if len(key_names) == 1:
        return key_part(item[key_names[0]])
    return tuple(key_part(item[name]) for name in key_names)


def to_json(value: Any) -> Any:
    """A typed AttributeValue (any nesting) as JSON-ready data: binary becomes base64 text."""
    if isinstance(value, Mapping):
        if len(value) == 1:
            ((kind, raw),) = value.items()
            if kind == "B":
                return {"B": base64.b64encode(raw).decode("ascii")}
            if kind == "BS":
                return {"BS": [base64.b64encode(v).decode("ascii") for v in raw]}
            if kind == "M":
                return {"M": {k: to_json(v) for k, v in raw.items()}}
            if kind == "L":
                return {"L": [to_json(v) for v in raw]}
        return dict(value)
    raise TypeError(f"not a DynamoDB AttributeValue: {type(value).__name__}")


def from_json(value: Any) -> Any:
    """The inverse of :func:`to_json`."""
    ((kind, raw),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(raw)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in raw]}
    if kind == "M":
        return {"M": {k: from_json(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [from_json(v) for v in raw]}
    return {kind: raw}
