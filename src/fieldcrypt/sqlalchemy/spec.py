"""``column_spec``: everything raw-SQL code (the rotation engine, scripts) needs about a column.

The rotation engine re-encrypts at the raw-SQL level; it must store exactly what the column type
would. A :class:`ColumnSpec` states the storage rules of docs/sqlalchemy.md for one column and
applies them (``encrypt`` / ``decrypt`` / ``index``), so no caller re-implements them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, Table

from fieldcrypt import storage as _storage
from fieldcrypt.codecs import Codec
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.place import Place, RowKey
from fieldcrypt.registry import get_keyring
from fieldcrypt.sqlalchemy import blind_index, row_binding
from fieldcrypt.sqlalchemy.types import Encrypted, Sealed, Storage


@dataclass(frozen=True)
class ColumnSpec:
    """How one encrypted column stores its values (see docs/sqlalchemy.md, "Storage rules")."""

    table: str
    column: str
    keyring: str
    codec: Codec[Any]
    storage: Storage
    bind_row: bool
    primary_key: tuple[str, ...]
    index_column: str | None
    normalizer: Callable[[Any], Any] | None
    type: Encrypted[Any]

    def place(self, row: RowKey | None = None) -> Place:
        if self.bind_row and row is None:
            raise ConfigurationError(f"{self.table}.{self.column} is bound to its row: pass row=")
        return Place(self.table, self.column, row if self.bind_row else None)

    def encrypt(self, value: Any, row: RowKey | None = None) -> bytes | str:
        """The stored form of ``value``: v1 bytes, or their base64 text for text storage."""
        blob = get_keyring(self.keyring).encrypt(self.codec.to_bytes(value), self.place(row))
        return _storage.to_stored(blob, self.storage)

    def decrypt(self, stored: bytes | str | Sealed, row: RowKey | None = None) -> Any:
        """The Python value of a stored (or :class:`Sealed`) ciphertext."""
        blob = stored.blob if isinstance(stored, Sealed) else _storage.from_stored(stored)
        if self.bind_row:
            return row_binding.open_sealed(self.type, Sealed(blob), self.place(row).row)  # type: ignore[arg-type]
        return self.codec.from_bytes(get_keyring(self.keyring).decrypt(blob, self.place()))

    def seal(self, value: Any, row: RowKey | None = None) -> Sealed:
        """``value`` encrypted for this column (and ``row``), to pass to a Core statement as is;
        the way to UPDATE a row-bound column outside the ORM. Carries the blind-index token."""
        if self.bind_row:
            return row_binding.seal(self.type, value, self.place(row).row)  # type: ignore[arg-type]
        blob = get_keyring(self.keyring).encrypt(self.codec.to_bytes(value), self.place())
        return Sealed(blob, self.index(value))

    def index(self, value: Any) -> bytes | None:
        """The blind-index token for ``value`` (None when the column is not searchable)."""
        return blind_index.token(self.type, value) if self.index_column else None


def column_spec(table_name: str, column_name: str, metadata_or_table: MetaData | Table) -> ColumnSpec:
    """The spec of ``table_name.column_name`` in a MetaData (or Table).

    Raises:
        ConfigurationError: no such table or column, or the column is not encrypted.
    """
    table = _table(table_name, metadata_or_table)
    column = table.c.get(column_name)
    if column is None:
        column = next((c for c in table.columns if c.name == column_name), None)
    if column is None or not isinstance(column.type, Encrypted):
        raise ConfigurationError(f"{table_name}.{column_name} is not an encrypted column")
    type_: Encrypted[Any] = column.type
    return ColumnSpec(
        table=table.fullname,
        column=column.name,
        keyring=type_.keyring,
        codec=type_.codec,
        storage=type_.storage,
        bind_row=type_.bind_row,
        primary_key=tuple(c.name for c in table.primary_key.columns),
        index_column=type_.index_name,
        normalizer=type_.normalizer,
        type=type_,
    )


def encrypted_columns(metadata_or_table: MetaData | Table) -> list[ColumnSpec]:
    """Specs of every encrypted column of a MetaData or Table."""
    tables = (
        metadata_or_table.sorted_tables if isinstance(metadata_or_table, MetaData) else [metadata_or_table]
    )
    return [
        column_spec(t.name, c.name, t) for t in tables for c in t.columns if isinstance(c.type, Encrypted)
    ]


def _table(name: str, metadata_or_table: MetaData | Table) -> Table:
    if isinstance(metadata_or_table, Table):
        if name not in (metadata_or_table.name, metadata_or_table.fullname):
            raise ConfigurationError(f"table {metadata_or_table.name!r} is not {name!r}")
        return metadata_or_table
    for table in metadata_or_table.tables.values():
        if name in (table.name, table.fullname):
            return table
    raise ConfigurationError(f"no table named {name!r} in this MetaData")
