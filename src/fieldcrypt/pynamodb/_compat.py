"""PynamoDB internals fieldcrypt reads, each behind one function that fails loudly when gone.

Supported: PynamoDB 6.0 and 6.1. PynamoDB has no public accessor for a model's key attribute
names, its indexes, an index's hash key, or whether a MapAttribute is still a class-level
container; everything else uses documented API (``Attribute``, ``Model`` methods).
"""

from __future__ import annotations

from typing import Any

from fieldcrypt._hostcompat import internal

_HOST = "pynamodb"


def key_names(model: type[Any]) -> tuple[str | None, str | None]:
    """The Python names of ``model``'s hash and range key attributes (None where there is none)."""
    why = "bind encrypted values to their item's key"
    return (
        internal(model, "_hash_keyname", host=_HOST, why=why),
        internal(model, "_range_keyname", host=_HOST, why=why),
    )


def indexes(model: type[Any]) -> dict[str, Any]:
    """``model``'s secondary indexes by index name."""
    found: dict[str, Any] = internal(
        model,
        "_indexes",
        host=_HOST,
        why="find the GSI keyed on a blind index, and refuse indexes keyed on ciphertext",
    )
    return found


def index_hash_key(index: Any) -> Any:
    """The attribute an index is keyed on (hash key), or None."""
    return internal(index, "_hash_key_attribute", host=_HOST, why="find the GSI keyed on a blind index")()


def is_attribute_container(attribute: Any) -> bool:
    """True for a MapAttribute not (yet) bound to a model class (it keeps its arguments aside)."""
    probe = internal(
        attribute,
        "_is_attribute_container",
        host=_HOST,
        why="read how an encrypted MapAttribute was declared",
    )
    return bool(probe())
