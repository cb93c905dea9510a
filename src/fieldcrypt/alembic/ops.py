"""fieldcrypt's Alembic operations, registered with ``Operations.register_operation``.

``op.create_key_store()``, ``op.encrypt_column()``, ``op.decrypt_column()``,
``op.reencrypt_column()``, ``op.rewrap_keys()`` and ``op.rotate_blind_index()``. Each data
operation runs the batch engine (fieldcrypt.rotation) inside ``autocommit_block()``: the rows
are committed batch by batch rather than held in one migration-long transaction, so an
interrupted upgrade keeps its progress and the rerun finishes it (every step is idempotent).
Offline mode (``alembic upgrade --sql``) is refused: these operations read and rewrite rows.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.operations import MigrateOperation, Operations

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keys.master import MasterKey

RowOptions = dict[str, Any]


def _options(**given: Any) -> RowOptions:
    return {k: v for k, v in given.items() if v is not None}


class _ColumnOp(MigrateOperation):
    """An operation on one encrypted column: its place, keyring and storage options."""

    def __init__(
        self,
        table_name: str,
        column_name: str,
        *,
        keyring: str,
        codec: str = "text",
        storage: str = "binary",
        row_binding: bool = False,
        batch_size: int = 1000,
        max_kms_calls_per_second: float | None = None,
        existing_type: sa.types.TypeEngine[Any] | None = None,
        schema: str | None = None,
    ) -> None:
        self.table_name = table_name
        self.column_name = column_name
        self.keyring = keyring
        self.codec = codec
        self.storage = storage
        self.row_binding = row_binding
        self.batch_size = batch_size
        self.max_kms_calls_per_second = max_kms_calls_per_second
        self.existing_type = existing_type
        self.schema = schema

    def column_options(self) -> dict[str, Any]:
        return {
            "keyring": self.keyring,
            "codec": self.codec,
            "storage": self.storage,
            "row_binding": self.row_binding,
            "batch_size": self.batch_size,
            "max_kms_calls_per_second": self.max_kms_calls_per_second,
            "existing_type": self.existing_type,
            "schema": self.schema,
        }

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table_name}" if self.schema else self.table_name


@Operations.register_operation("encrypt_column")
class EncryptColumnOp(_ColumnOp):
    """Encrypt a plaintext column in place: widen its type, then encrypt every value in batches.

    While it runs the column holds both plaintext and ciphertext: declare the column
    ``Encrypted(..., transitional=True)`` in the application (or read raw rows with
    ``fieldcrypt.rotation.transitional.read``) until ``fieldcrypt status`` shows no plaintext.
    Pass ``existing_type`` (the plaintext type) to make the operation reversible by autogenerate.
    """

    @classmethod
    def encrypt_column(cls, operations: Operations, table_name: str, column_name: str, **kw: Any) -> Any:
        return operations.invoke(cls(table_name, column_name, **kw))

    def reverse(self) -> DecryptColumnOp:
        return DecryptColumnOp(self.table_name, self.column_name, **self.column_options())


@Operations.register_operation("decrypt_column")
class DecryptColumnOp(_ColumnOp):
    """Decrypt every value back to plaintext and give the column back ``existing_type``."""

    @classmethod
    def decrypt_column(cls, operations: Operations, table_name: str, column_name: str, **kw: Any) -> Any:
        return operations.invoke(cls(table_name, column_name, **kw))

    def reverse(self) -> EncryptColumnOp:
        return EncryptColumnOp(self.table_name, self.column_name, **self.column_options())


@Operations.register_operation("reencrypt_column")
class ReencryptColumnOp(_ColumnOp):
    """Move every value of the column to its keyring's current data key (``rotate=True``
    makes a new data key first). Its downgrade is a no-op: values under a newer key still read."""

    def __init__(self, table_name: str, column_name: str, *, rotate: bool = False, **kw: Any) -> None:
        super().__init__(table_name, column_name, **kw)
        self.rotate = rotate

    @classmethod
    def reencrypt_column(cls, operations: Operations, table_name: str, column_name: str, **kw: Any) -> Any:
        return operations.invoke(cls(table_name, column_name, **kw))


@Operations.register_operation("rotate_blind_index")
class RotateBlindIndexOp(_ColumnOp):
    """Make a new blind-index key, wait until every process uses it for writes (``settle_seconds``,
    default the keyring's ``refresh_every``), recompute ``index_column`` for every row, then retire
    the old index keys. Queries match either version until then (``blind_index_candidates``)."""

    def __init__(
        self,
        table_name: str,
        column_name: str,
        *,
        index_column: str | None = None,
        normalizer: Any = None,
        settle_seconds: float | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(table_name, column_name, **kw)
        self.index_column = index_column or f"{column_name}_bidx"
        self.normalizer = normalizer
        self.settle_seconds = settle_seconds

    @classmethod
    def rotate_blind_index(cls, operations: Operations, table_name: str, column_name: str, **kw: Any) -> Any:
        return operations.invoke(cls(table_name, column_name, **kw))


@Operations.register_operation("rewrap_keys")
class RewrapKeysOp(MigrateOperation):
    """Wrap every data key of ``keyring`` under the master key ``to`` (a KMS key ARN, ``file:PATH``
    of a local key, or a MasterKey). No application row is read or written.

    ``remove_old=True`` also drops the copies under every other master key (then the old key can
    be disabled); its downgrade, given ``from_``, rewraps back.
    """

    def __init__(
        self,
        keyring: str,
        to: str | MasterKey,
        *,
        from_: str | MasterKey | None = None,
        remove_old: bool = False,
    ) -> None:
        self.keyring = keyring
        self.to = to
        self.from_ = from_
        self.remove_old = remove_old

    @classmethod
    def rewrap_keys(cls, operations: Operations, keyring: str, to: str | MasterKey, **kw: Any) -> Any:
        return operations.invoke(cls(keyring, to, **kw))

    def reverse(self) -> RewrapKeysOp:
        if self.from_ is None:
            raise ConfigurationError("rewrap_keys needs from_= to be reversed")
        return RewrapKeysOp(self.keyring, self.from_, from_=self.to, remove_old=self.remove_old)


@Operations.register_operation("create_key_store")
class CreateKeyStoreOp(MigrateOperation):
    """Create the key-store table (default ``fieldcrypt_keys``) that SqlKeyStore reads."""

    def __init__(self, table_name: str = "fieldcrypt_keys", *, schema: str | None = None) -> None:
        self.table_name = table_name
        self.schema = schema

    @classmethod
    def create_key_store(
        cls, operations: Operations, table_name: str = "fieldcrypt_keys", *, schema: str | None = None
    ) -> Any:
        return operations.invoke(cls(table_name, schema=schema))

    def reverse(self) -> DropKeyStoreOp:
        return DropKeyStoreOp(self.table_name, schema=self.schema)


@Operations.register_operation("drop_key_store")
class DropKeyStoreOp(MigrateOperation):
    """Drop the key-store table: every data key in it, and so every value under them, is lost.

    Refused unless called with ``destroy_all_keys=True``: an irreversible choice is spelled out
    in the revision, never implied by a generated downgrade.
    """

    def __init__(
        self,
        table_name: str = "fieldcrypt_keys",
        *,
        schema: str | None = None,
        destroy_all_keys: bool = False,
    ) -> None:
        self.table_name = table_name
        self.schema = schema
        self.destroy_all_keys = destroy_all_keys

    @classmethod
    def drop_key_store(
        cls,
        operations: Operations,
        table_name: str = "fieldcrypt_keys",
        *,
        schema: str | None = None,
        destroy_all_keys: bool = False,
    ) -> Any:
        return operations.invoke(cls(table_name, schema=schema, destroy_all_keys=destroy_all_keys))

    def reverse(self) -> CreateKeyStoreOp:
        return CreateKeyStoreOp(self.table_name, schema=self.schema)
