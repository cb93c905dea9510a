"""SQLAlchemy integration: encrypted column types, blind-index search, row binding, async.

Importing this module installs nothing: fieldcrypt's listeners (:mod:`fieldcrypt.sqlalchemy.attach`)
are registered when the first ``Encrypted`` type is made, so a process that never declares an
encrypted column runs SQLAlchemy untouched. Storage rules shared with the rotation engine are in
:mod:`fieldcrypt.storage` and docs/sqlalchemy.md.
"""

from __future__ import annotations

from fieldcrypt.sqlalchemy.asyncio import warm_up, warm_up_sync
from fieldcrypt.sqlalchemy.spec import ColumnSpec, column_spec, encrypted_columns
from fieldcrypt.sqlalchemy.types import Encrypted, Sealed
from fieldcrypt.sqlalchemy.verify import execute_verified

__all__ = [
    "ColumnSpec",
    "Encrypted",
    "Sealed",
    "column_spec",
    "encrypted_columns",
    "execute_verified",
    "warm_up",
    "warm_up_sync",
]
