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

from fieldcrypt import adoption, codecs
from fieldcrypt import storage as _storage
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
        return _storage.to_stored(blob, self.the_storage)  # the rule Encrypted follows too

    def as_blob(self, stored: object) -> bytes | None:
        """The v1 bytes a stored value holds, or None when it is plaintext (fieldcrypt.adoption)."""
        return adoption.ciphertext_in(stored, text=self.the_storage is Storage.TEXT)

    def plaintext_bytes(self, stored: object) -> bytes:
        """The codec bytes of a plaintext value found in the column (adoption, transitional mode)."""
        return adoption.plaintext_bytes(self.the_codec, stored)

    def plaintext_to_store(self, data: bytes) -> object:
        """What a decrypted value is written back as (``decrypt_column``): the database's text form."""
        if self.the_codec.python_type is bytes and self.the_storage is Storage.BINARY:
            return data
        text = _db_text(self.the_codec.from_bytes(data))
        return text if self.the_storage is Storage.TEXT else text.encode("utf-8")


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
