"""How a ciphertext is stored, for every integration and the operations alike: the v1 bytes
themselves (binary storage) or their standard base64 (text storage), and how large that gets.

Pure rules with no host library, so the SQLAlchemy integration, the SQL rotation engine and the
column widening all read and write exactly the same thing (docs/sqlalchemy.md, "Storage").
The SQL column types per dialect are in :mod:`fieldcrypt.storage.sql` (it needs SQLAlchemy).
"""

from __future__ import annotations

import math
from typing import Literal

from fieldcrypt import format as fmt

Storage = Literal["binary", "text"]

__all__ = ["Storage", "from_stored", "stored_size", "to_stored"]


def stored_size(plaintext_bytes: int | None, storage: str) -> int | None:
    """Largest stored value for a plaintext of up to ``plaintext_bytes``: bytes for ``"binary"``
    storage (plaintext plus the v1 overhead), characters for ``"text"`` (standard base64 of those).

    ``storage`` is a :data:`Storage` name or the rotation engine's enum of the same values."""
    if plaintext_bytes is None:
        return None
    binary = plaintext_bytes + fmt.OVERHEAD
    return binary if storage == "binary" else 4 * math.ceil(binary / 3)


def to_stored(blob: bytes, storage: str) -> bytes | str:
    """What a column of ``storage`` (``"binary"`` or ``"text"``) holds for the v1 ciphertext ``blob``."""
    return fmt.to_text(blob) if storage == "text" else blob


def from_stored(stored: bytes | bytearray | memoryview | str) -> bytes:
    """The v1 bytes of a stored ciphertext: base64 text (text storage) or the bytes themselves.

    Raises:
        fieldcrypt.format.MalformedCiphertext: text that is not standard base64.
    """
    return fmt.from_text(stored) if isinstance(stored, str) else bytes(stored)
