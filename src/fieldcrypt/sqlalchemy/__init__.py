"""SQLAlchemy integration: encrypted column types, blind-index search, row binding, async.

Importing this module installs fieldcrypt's listeners (see :mod:`fieldcrypt.sqlalchemy.attach`).
Storage rules shared with the rotation engine are in docs/sqlalchemy.md.
"""

from __future__ import annotations

from fieldcrypt.sqlalchemy import attach as _attach
from fieldcrypt.sqlalchemy.asyncio import warm_up, warm_up_sync
from fieldcrypt.sqlalchemy.spec import ColumnSpec, column_spec, encrypted_columns
from fieldcrypt.sqlalchemy.types import Encrypted, Sealed

_attach.install()

__all__ = [
    "ColumnSpec",
    "Encrypted",
    "Sealed",
    "column_spec",
    "encrypted_columns",
    "warm_up",
    "warm_up_sync",
]
