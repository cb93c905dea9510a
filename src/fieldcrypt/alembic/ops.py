"""fieldcrypt's Alembic operations, registered with ``Operations.register_operation``.

``op.create_key_store()``, ``op.encrypt_column()``, ``op.decrypt_column()``,
``op.reencrypt_column()``, ``op.rewrap_keys()`` and ``op.rotate_blind_index()``. Each data
operation runs the batch engine (fieldcrypt.rotation) inside ``autocommit_block()``: the rows
are committed batch by batch rather than held in one migration-long transaction, so an
interrupted upgrade keeps its progress and the rerun finishes it (every step is idempotent).
Offline mode (``alembic upgrade --sql``) is refused: these operations read and rewrite rows.

Column operations take the column's ``Encrypted(...)`` type (``type_=``), the one description of
its keyring, codec, storage, row binding and blind index. Under ``mypy --strict``, call them
through :mod:`fieldcrypt.alembic.op` (typed functions), since Alembic's ``op`` stub cannot know
operations registered by a library.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.operations import MigrateOperation, Operations

from fieldcrypt.column import ColumnSpec
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.sqlalchemy.spec import spec_of
from fieldcrypt.sqlalchemy.types import Encrypted

TypeArg = sa.types.TypeEngine[Any] | None


class _ColumnOp(MigrateOperation):
    """An operation on one encrypted column, described by its ``Encrypted(...)`` type.

    The type is the single description of the column (keyring, codec, storage, row binding,
    blind index): the operation never restates it as loose options, so the values it writes are
    the ones the model reads.
    """

    def __init__(
        self,
        table_name: str,
        column_name: str,
        *,
        type_: Encrypted[Any],
        existing_type: TypeArg = None,
        batch_size: int = 1000,
        max_kms_calls_per_second: float | None = None,
        schema: str | None = None,
    ) -> None:
        if not isinstance(type_, Encrypted):
            raise ConfigurationError(
                f"op on {table_name}.{column_name}: type_= must be the column's Encrypted(...) type "
                f"(as declared in the model), not {type_!r}"
            )
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.table_name = table_name
        self.column_name = column_name
        self.type_ = type_
        self.existing_type = existing_type
        self.batch_size = batch_size
        self.max_kms_calls_per_second = max_kms_calls_per_second
        self.schema = schema

    def column_options(self) -> dict[str, Any]:
        return {
            "type_": self.type_,
            "existing_type": self.existing_type,
            "batch_size": self.batch_size,
            "max_kms_calls_per_second": self.max_kms_calls_per_second,
            "schema": self.schema,
        }

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table_name}" if self.schema else self.table_name

    def spec(self) -> ColumnSpec:
        """The column's spec, derived from ``type_`` bound to this table and column."""
        return spec_of(self.type_.bound_to(self.qualified_table, self.column_name))


@Operations.register_operation("encrypt_column")
class EncryptColumnOp(_ColumnOp):
    """Encrypt a plaintext column in place: widen its type, then encrypt every value in batches.

    While it runs the column holds both plaintext and ciphertext: declare the column
    ``Encrypted(..., transitional=True)`` in the application (or read raw rows with
    ``fieldcrypt.rotation.transitional.read``) until ``fieldcrypt status`` shows no plaintext.
    Pass ``existing_type`` (the plaintext type) to make the operation reversible by autogenerate.
    """

    @classmethod
    def encrypt_column(
        cls,
        operations: Operations,
        table_name: str,
        column_name: str,
        *,
        type_: Encrypted[Any],
        existing_type: TypeArg = None,
        batch_size: int = 1000,
        max_kms_calls_per_second: float | None = None,
        schema: str | None = None,
    ) -> None:
        """Encrypt every plaintext value of ``table_name.column_name`` as ``type_`` describes."""
        operations.invoke(
            cls(
                table_name,
                column_name,
                type_=type_,
                existing_type=existing_type,
                batch_size=batch_size,
                max_kms_calls_per_second=max_kms_calls_per_second,
                schema=schema,
            )
        )

    def reverse(self) -> DecryptColumnOp:
        return DecryptColumnOp(self.table_name, self.column_name, **self.column_options())


@Operations.register_operation("decrypt_column")
class DecryptColumnOp(_ColumnOp):
    """Decrypt every value back to plaintext and give the column back ``existing_type``."""

    @classmethod
    def decrypt_column(
        cls,
        operations: Operations,
        table_name: str,
        column_name: str,
        *,
        type_: Encrypted[Any],
        existing_type: TypeArg = None,
        batch_size: int = 1000,
        max_kms_calls_per_second: float | None = None,
        schema: str | None = None,
    ) -> None:
        """Decrypt every value of ``table_name.column_name`` (declared ``type_``) in place."""
        operations.invoke(
            cls(
                table_name,
                column_name,
                type_=type_,
                existing_type=existing_type,
                batch_size=batch_size,
                max_kms_calls_per_second=max_kms_calls_per_second,
                schema=schema,
            )
        )

    def reverse(self) -> EncryptColumnOp:
        return EncryptColumnOp(self.table_name, self.column_name, **self.column_options())


@Operations.register_operation("reencrypt_column")
class ReencryptColumnOp(_ColumnOp):
    """Move every value of the column to its keyring's current data key (``rotate=True``
    makes a new data key first). Its downgrade is a no-op: values under a newer key still read."""

    def __init__(
        self,
        table_name: str,
        column_name: str,
        *,
        type_: Encrypted[Any],
        rotate: bool = False,
        batch_size: int = 1000,
        max_kms_calls_per_second: float | None = None,
        schema: str | None = None,
    ) -> None:
        super().__init__(
            table_name,
            column_name,
            type_=type_,
            batch_size=batch_size,
            max_kms_calls_per_second=max_kms_calls_per_second,
            schema=schema,
        )
        self.rotate = rotate

    @classmethod
    def reencrypt_column(
        cls,
        operations: Operations,
        table_name: str,
        column_name: str,
        *,
        type_: Encrypted[Any],
        rotate: bool = False,
        batch_size: int = 1000,
        max_kms_calls_per_second: float | None = None,
        schema: str | None = None,
    ) -> None:
        """Re-encrypt every value of ``table_name.column_name`` under the current data key."""
        operations.invoke(
            cls(
                table_name,
                column_name,
                type_=type_,
                rotate=rotate,
                batch_size=batch_size,
                max_kms_calls_per_second=max_kms_calls_per_second,
                schema=schema,
            )
        )


@Operations.register_operation("rotate_blind_index")
class RotateBlindIndexOp(_ColumnOp):
    """Make a new blind-index key, wait until every process uses it for writes (``settle_seconds``,
    default the keyring's ``refresh_every``), recompute the index column (``type_``'s, e.g.
    ``<column>_bidx``) for every row, then retire the old index keys that no column uses any more
    (another searchable column of the keyring keeps them until its own reindex). Queries match
    either version until then (``blind_index_candidates``). ``rotate=False`` makes no new key: it
    moves a further column of the keyring to the key an earlier ``rotate_blind_index`` made."""

    def __init__(
        self,
        table_name: str,
        column_name: str,
        *,
        type_: Encrypted[Any],
        settle_seconds: float | None = None,
        rotate: bool = True,
        batch_size: int = 1000,
        max_kms_calls_per_second: float | None = None,
        schema: str | None = None,
    ) -> None:
        super().__init__(
            table_name,
            column_name,
            type_=type_,
            batch_size=batch_size,
            max_kms_calls_per_second=max_kms_calls_per_second,
            schema=schema,
        )
        if not type_.searchable:
            raise ConfigurationError(
                f"rotate_blind_index({table_name!r}, {column_name!r}): type_ is not searchable; "
                "pass the column's Encrypted(..., searchable=True) type"
            )
        self.settle_seconds = settle_seconds
        self.rotate = rotate

    @classmethod
    def rotate_blind_index(
        cls,
        operations: Operations,
        table_name: str,
        column_name: str,
        *,
        type_: Encrypted[Any],
        settle_seconds: float | None = None,
        rotate: bool = True,
        batch_size: int = 1000,
        max_kms_calls_per_second: float | None = None,
        schema: str | None = None,
    ) -> None:
        """Rotate the blind-index key of ``table_name.column_name`` and recompute its index."""
        operations.invoke(
            cls(
                table_name,
                column_name,
                type_=type_,
                settle_seconds=settle_seconds,
                rotate=rotate,
                batch_size=batch_size,
                max_kms_calls_per_second=max_kms_calls_per_second,
                schema=schema,
            )
        )


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
    def rewrap_keys(
        cls,
        operations: Operations,
        keyring: str,
        to: str | MasterKey,
        *,
        from_: str | MasterKey | None = None,
        remove_old: bool = False,
    ) -> None:
        """Wrap every data key of ``keyring`` under ``to`` (see the class docstring)."""
        operations.invoke(cls(keyring, to, from_=from_, remove_old=remove_old))

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
    ) -> None:
        operations.invoke(cls(table_name, schema=schema))

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
    ) -> None:
        operations.invoke(cls(table_name, schema=schema, destroy_all_keys=destroy_all_keys))

    def reverse(self) -> CreateKeyStoreOp:
        return CreateKeyStoreOp(self.table_name, schema=self.schema)
