"""The engine's view of one column is the core's :class:`~fieldcrypt.column.ColumnSpec`, built
from the column's ``Encrypted`` type (``fieldcrypt.sqlalchemy.column_spec``), never restated."""

from __future__ import annotations

from fieldcrypt.column import ColumnSpec, Storage

__all__ = ["ColumnSpec", "Storage"]
