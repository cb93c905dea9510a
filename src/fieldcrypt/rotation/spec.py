"""What the batch engine needs to know about one encrypted column, and how a stored value reads.

The engine works at the raw-SQL level (reflected tables), so a column's options are explicit:
keyring, codec, storage (binary v1 bytes or base64 text) and row binding. They follow the storage
rules of the core contract (docs/format.md, docs/sqlalchemy.md), so values written here read back
through ``fieldcrypt.sqlalchemy.Encrypted`` and the other way round.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fieldcrypt import codecs
from fieldcrypt import format as fmt
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, RowKey
from fieldcrypt.registry import get_keyring

CODECS: dict[str, codecs.Codec[Any]] = {
    c.name: c
    for c in (
        codecs.TEXT,
        codecs.BYTES,
        codecs.INT,
        codecs.DECIMAL,
        codecs.FLOAT,
        codecs.BOOL,
        codecs.DATE,
        codecs.DATETIME,
        codecs.TIME,
        codecs.TIMEDELTA,
        codecs.UUID,
        codecs.JSON,
    )
}


class Storage(enum.StrEnum):
    BINARY = "binary"  # the v1 bytes exactly (BYTEA, VARBINARY/BLOB, BLOB)
    TEXT = "text"  # standard base64 of the v1 bytes, in a character column


def codec_named(name: str | codecs.Codec[Any]) -> codecs.Codec[Any]:
    if isinstance(name, codecs.Codec):
        return name
    try:
        return CODECS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown codec {name!r}; choose one of {', '.join(sorted(CODECS))}"
        ) from None


@dataclass(frozen=True)
class ColumnSpec:
    """One encrypted column: where it is and how its values are stored.

    Args:
        table, column: the column (also the place every ciphertext is bound to).
        keyring: a keyring or the name of a registered one.
        codec: how plaintext values become bytes (a codec or its name, e.g. ``"text"``).
        storage: ``"binary"`` (default) or ``"text"`` (base64, for existing character columns).
        row_binding: ciphertexts are bound to the row's primary key too.
        index_column: the blind-index column kept beside the value, if any.
        normalizer: applied to a value before its blind index is computed (writes and queries).
    """

    table: str
    column: str
    keyring: Keyring | str
    codec: codecs.Codec[Any] | str = "text"
    storage: Storage | str = Storage.BINARY
    row_binding: bool = False
    index_column: str | None = None
    normalizer: Callable[[Any], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", codec_named(self.codec))
        try:
            object.__setattr__(self, "storage", Storage(self.storage))
        except ValueError:
            raise ConfigurationError(f"storage must be 'binary' or 'text', not {self.storage!r}") from None

    @classmethod
    def from_metadata(cls, metadata: Any, table: str, column: str) -> ColumnSpec:
        """The spec of a column declared ``Encrypted(...)`` in a SQLAlchemy MetaData (or Table),
        read with the integration's ``column_spec`` helper, so options cannot drift from the model.

        Raises:
            ConfigurationError: no such table or column, or the column is not encrypted.
        """
        from fieldcrypt.sqlalchemy.spec import column_spec

        declared = column_spec(table, column, metadata)
        return cls(
            declared.table,
            declared.column,
            keyring=declared.keyring,
            codec=declared.codec,
            storage=declared.storage,
            row_binding=declared.bind_row,
            index_column=declared.index_column,
            normalizer=declared.normalizer,
        )

    @property
    def the_codec(self) -> codecs.Codec[Any]:
        assert isinstance(self.codec, codecs.Codec)
        return self.codec

    @property
    def the_storage(self) -> Storage:
        return Storage(self.storage)

    def resolve_keyring(self) -> Keyring:
        return self.keyring if isinstance(self.keyring, Keyring) else get_keyring(self.keyring)

    def place(self, row: RowKey | None) -> Place:
        if not self.row_binding:
            return self.column_place  # one object: its encoding is computed once, not per row
        return Place(self.table, self.column, row)

    @functools.cached_property
    def column_place(self) -> Place:
        return Place(self.table, self.column)

    def index_place(self) -> Place:
        return self.column_place

    # -- stored values ----------------------------------------------------------------------

    def to_stored(self, blob: bytes) -> bytes | str:
        return fmt.to_text(blob) if self.the_storage is Storage.TEXT else blob

    def as_blob(self, stored: object) -> bytes | None:
        """The v1 bytes a stored value holds, or None when it does not have the v1 shape."""
        if self.the_storage is Storage.TEXT:
            if not isinstance(stored, str):
                return None
            try:
                blob = fmt.from_text(stored)
            except fmt.MalformedCiphertext:
                return None
        else:
            blob = _as_bytes(stored)
        return blob if fmt.looks_like_ciphertext(blob) else None

    def plaintext_bytes(self, stored: object) -> bytes:
        """The codec bytes of a plaintext value found in the column (adoption, transitional mode)."""
        return plaintext_to_bytes(self.the_codec, stored)

    def plaintext_to_store(self, data: bytes) -> object:
        """What a decrypted value is written back as (``decrypt_column``): the database's text form."""
        if self.the_codec.python_type is bytes and self.the_storage is Storage.BINARY:
            return data
        text = _db_text(self.the_codec.from_bytes(data))
        return text if self.the_storage is Storage.TEXT else text.encode("utf-8")


def _as_bytes(stored: object) -> bytes:
    if isinstance(stored, bytes):
        return stored
    if isinstance(stored, bytearray | memoryview):
        return bytes(stored)
    if isinstance(stored, str):  # SQLite keeps a value's own storage class: plaintext stays TEXT
        return stored.encode("utf-8")
    return str(stored).encode("utf-8")


def plaintext_to_bytes(codec: codecs.Codec[Any], stored: object) -> bytes:
    """Codec bytes of a plaintext value, read either as its Python type or as the DB's text form.

    After the in-place widening a plaintext column holds the database's text form of each value
    (``convert_to(col::text)`` on PostgreSQL); parse it back to the codec's type, so the encrypted
    value reads back as exactly what the application would have written.
    """
    if isinstance(stored, bytes | bytearray | memoryview) and codec.python_type is not bytes:
        stored = bytes(stored).decode("utf-8")
    if isinstance(stored, str) and codec.python_type is not str:
        stored = _parse_text(codec, stored)
    return codec.to_bytes(stored)


def _parse_text(codec: codecs.Codec[Any], text: str) -> object:
    import datetime as dt
    import json
    import uuid
    from decimal import Decimal

    parsers: dict[str, Callable[[str], object]] = {
        "int": int,
        "decimal": Decimal,
        "float": float,
        "bool": lambda t: {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}[
            t.strip().lower()
        ],
        "date": dt.date.fromisoformat,
        "datetime": dt.datetime.fromisoformat,
        "time": dt.time.fromisoformat,
        "uuid": uuid.UUID,
        "json": json.loads,
        "bytes": lambda t: t.encode("utf-8"),
    }
    parser = parsers.get(codec.name)
    if parser is None:
        raise ConfigurationError(f"codec {codec.name!r} cannot read a plaintext value from its text form")
    try:
        return parser(text)
    except (ValueError, KeyError) as exc:
        raise ConfigurationError(
            f"a plaintext value is not a valid {codec.name}: {type(exc).__name__}"
        ) from None


def _db_text(value: object) -> str:
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
