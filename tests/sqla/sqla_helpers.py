"""Helpers for the SQLAlchemy integration tests: raw reads and ciphertext checks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fieldcrypt import format as fmt


def raw_rows(engine: sa.Engine, sql: str, **params: Any) -> list[Any]:
    """Rows fetched with plain SQL, as a DBA (or a stolen dump) sees them."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def assert_ciphertext(stored: Any, *plaintexts: bytes) -> bytes:
    """``stored`` is a format v1 value (bytes, or base64 text) containing none of ``plaintexts``."""
    blob = fmt.from_text(stored) if isinstance(stored, str) else bytes(stored)
    envelope = fmt.parse(blob)  # raises unless it is v1
    assert blob[0] == fmt.VERSION_1
    assert len(envelope.key_id) == fmt.KEY_ID_BYTES
    for plain in plaintexts:
        if len(plain) >= 4:
            assert plain not in blob
    return blob
