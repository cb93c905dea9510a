"""``column_spec``: an encrypted column's options, read from its ``Encrypted`` type.

The rotation engine, the Alembic operations, the CLI and raw-SQL scripts work with a core
:class:`~fieldcrypt.column.ColumnSpec`; :func:`spec_of` is the one place it is derived from the
type, so a column's options are never restated (and never drift) anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData, Table

from fieldcrypt.column import ColumnSpec
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.sqlalchemy import row_binding, translate
from fieldcrypt.sqlalchemy.types import Encrypted
from fieldcrypt.storage import sql as _storage

__all__ = [
    "ColumnSpec",
    "check_column_type",
    "check_plaintext_type",
    "column_spec",
    "encrypted_columns",
    "spec_of",
]


def spec_of(type_: Encrypted[Any], primary_key: Sequence[str] = ()) -> ColumnSpec:
    """The one derivation of a :class:`ColumnSpec` from an ``Encrypted`` type bound to its column.

    Raises:
        ConfigurationError: the type is not attached to a column (no place).
    """
    table, column = type_._where()
    return ColumnSpec(
        table=table,
        column=column,
        keyring=type_.keyring,
        codec=type_.codec,
        storage=type_.storage,
        bind_row=type_.bind_row,
        index_column=type_.index_name,
        normalizer=type_.normalizer,
        primary_key=tuple(primary_key),
        bound_as=type_.bound_as,
        from_=type_.from_,
        tenant_column=type_.tenant,
        subject_column=type_.subject,
    )


def column_spec(
    table_name: str,
    column_name: str,
    metadata_or_table: MetaData | Table,
    *,
    schema_translate_map: Mapping[str | None, str | None] | None = None,
) -> ColumnSpec:
    """The spec of ``table_name.column_name`` in a MetaData (or Table); with
    ``schema_translate_map``, of the table the map moves it to (the place includes the schema).

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
    row_binding.choosers(table, type_)  # its tenant and subject columns exist and are plaintext
    where = translate.effective_name(table, schema_translate_map)
    if type_.place != (where, column.name):
        type_ = type_.bound_to(where, column.name)  # the schema is part of the place
    return spec_of(type_, [c.name for c in table.primary_key.columns])


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


def check_plaintext_type(plain: sa.types.TypeEngine[Any], spec: ColumnSpec, what: str) -> None:
    """Refuse a codec that contradicts a column's plaintext type (``BOOLEAN`` encrypted as text).

    A plaintext type whose values are strings or bytes is never a contradiction: it may be a column
    already widened by ``encrypt_column``, or text the codec parses (``"41"`` for an Integer).

    Raises:
        ConfigurationError: the plaintext type holds values of another kind than the codec writes.
    """
    codec = spec.the_codec
    if codec.name == "timedelta":
        # Interval has no portable text form (PostgreSQL's '1 day 02:00:00', an epoch DATETIME
        # elsewhere) that the engine could read or write back exactly: never convert it in place.
        raise ConfigurationError(
            f"{spec.table}.{spec.column}: an Interval column cannot be encrypted or decrypted in "
            "place; add an Encrypted(Interval) column beside it and copy the values through the ORM"
        )
    try:
        found = _storage.codec_for(plain).name
    except ConfigurationError:
        return  # a type fieldcrypt has no codec for (NullType of a reflection): nothing to compare
    compatible = {found, codec.name} <= {"text", "enum"} or found in ("text", "bytes", codec.name)
    # MySQL and MariaDB have no BOOLEAN: it is TINYINT(1), which reflects as an integer.
    compatible |= found == "int" and codec.name == "bool" and type(plain).__name__ == "TINYINT"
    if not compatible:
        raise ConfigurationError(
            f"{spec.table}.{spec.column}: {what} is {type(plain).__name__}, whose values are "
            f"{found} values, but the declared Encrypted type encrypts {codec.name} values; declare "
            f"the column's own type (Encrypted({type(plain).__name__}, ...)), or the values would "
            "not read back"
        )


def check_column_type(conn: sa.Connection, spec: ColumnSpec) -> None:
    """:func:`check_plaintext_type` against the column's type as the database reports it.

    Raises:
        ConfigurationError: no such table or column, or a contradicting codec.
    """
    schema, _, name = spec.table.rpartition(".")
    try:
        columns = sa.inspect(conn).get_columns(name, schema=schema or None)
    except sa.exc.NoSuchTableError:
        raise ConfigurationError(f"table {spec.table!r} does not exist") from None
    found = next((c for c in columns if c["name"] == spec.column), None)
    if found is None:
        raise ConfigurationError(f"table {spec.table!r} has no column {spec.column!r}")
    check_plaintext_type(found["type"], spec, "the column in the database")
