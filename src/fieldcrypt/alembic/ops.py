"""fieldcrypt's Alembic operations, registered with ``Operations.register_operation``.

``op.create_key_store()``, ``op.upgrade_key_store()``, ``op.encrypt_column()``, ``op.decrypt_column()``,
``op.reencrypt_column()``, ``op.rebind_column()``, ``op.rewrap_keys()`` and
``op.rotate_blind_index()``. Each data operation runs the batch engine (fieldcrypt.rotation)
inside ``autocommit_block()``: the rows are committed batch by batch rather than held in one
migration-long transaction, so an interrupted upgrade keeps its progress and the rerun finishes it
(every step is idempotent). Offline mode (``alembic upgrade --sql``) is refused: these operations
read and rewrite rows.

Column operations take the column's ``Encrypted(...)`` type (``type_=``), the one description of
its keyring, codec, storage, row binding and blind index. Each operation's parameters are written
once, in its ``__init__``: :func:`operation` registers the ``op.<name>`` method from it, and
:mod:`fieldcrypt.alembic.op` derives typed functions from it for revisions checked by
``mypy --strict`` (Alembic's ``op`` stub cannot know operations registered by a library).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypedDict, TypeVar, Unpack

import sqlalchemy as sa
from alembic.operations import MigrateOperation, Operations

from fieldcrypt.column import ColumnSpec
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.foreign import ForeignFormat
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.sqlalchemy.spec import spec_of
from fieldcrypt.sqlalchemy.types import Encrypted

TypeArg = sa.types.TypeEngine[Any] | None
_Op = TypeVar("_Op", bound=MigrateOperation)


def operation(name: str) -> Callable[[type[_Op]], type[_Op]]:
    """Register ``op.<name>(...)`` as ``operations.invoke(OpClass(...))``, taking exactly the
    parameters of the class's ``__init__`` (Alembic builds the method from the classmethod)."""

    def register(op_class: type[_Op]) -> type[_Op]:
        def invoke(cls: type[_Op], operations: Operations, *args: Any, **kwargs: Any) -> None:
            operations.invoke(cls(*args, **kwargs))

        invoke.__name__ = invoke.__qualname__ = name
        invoke.__doc__ = op_class.__doc__
        setattr(op_class, name, classmethod(invoke))
        return Operations.register_operation(name)(op_class)

    return register


class RunOptions(TypedDict, total=False):
    """How a column operation runs: rows per batch (default 1000), a cap on KMS calls per second
    (default none), the table's schema (default the connection's) and, for a per-tenant column
    (``Encrypted(..., tenant=...)``), the one tenant whose rows it covers (default every tenant,
    each row under its own tenant's keyring)."""

    batch_size: int
    max_kms_calls_per_second: float | None
    schema: str | None
    tenant: str | int | None


class _ColumnOp(MigrateOperation):
    """An operation on one encrypted column, described by its ``Encrypted(...)`` type.

    The type is the single description of the column (keyring, codec, storage, row binding,
    blind index): the operation never restates it as loose options, so the values it writes are
    the ones the model reads.
    """

    existing_type: TypeArg = None

    def __init__(
        self, table_name: str, column_name: str, *, type_: Encrypted[Any], **options: Unpack[RunOptions]
    ) -> None:
        if not isinstance(type_, Encrypted):
            raise ConfigurationError(
                f"op on {table_name}.{column_name}: type_= must be the column's Encrypted(...) type "
                f"(as declared in the model), not {type_!r}"
            )
        for unknown in options.keys() - RunOptions.__optional_keys__:
            # **options is typed for mypy; at run time a misspelt option must fail as loudly.
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown!r}")
        batch_size = options.get("batch_size", 1000)
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.table_name = table_name
        self.column_name = column_name
        self.type_ = type_
        self.batch_size = batch_size
        self.max_kms_calls_per_second = options.get("max_kms_calls_per_second")
        self.schema = options.get("schema")
        self.tenant = options.get("tenant")
        if self.tenant is not None and type_.tenant is None:
            raise ConfigurationError(
                f"op on {table_name}.{column_name}: tenant= names one tenant's rows, but type_ has no "
                "tenant column; declare Encrypted(..., tenant=...) or drop tenant="
            )

    def run_options(self) -> RunOptions:
        return {
            "batch_size": self.batch_size,
            "max_kms_calls_per_second": self.max_kms_calls_per_second,
            "schema": self.schema,
            "tenant": self.tenant,
        }

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table_name}" if self.schema else self.table_name

    def spec(self) -> ColumnSpec:
        """The column's spec, derived from ``type_`` bound to this table and column."""
        return spec_of(self.type_.bound_to(self.qualified_table, self.column_name))


class _ConvertOp(_ColumnOp):
    """Encrypt or decrypt in place; ``existing_type`` is the plaintext type of the column, ``from_``
    (encrypting only) the library whose ciphertexts the column holds."""

    takes_from = False

    def __init__(
        self,
        table_name: str,
        column_name: str,
        *,
        type_: Encrypted[Any],
        existing_type: TypeArg = None,
        from_: ForeignFormat | None = None,
        **options: Unpack[RunOptions],
    ) -> None:
        super().__init__(table_name, column_name, type_=type_, **options)
        if from_ is not None and not self.takes_from:
            raise ConfigurationError(
                f"{type(self).__name__}: from_ names the library a column is moved off, for encrypt_column only"
            )
        self.existing_type = existing_type
        self.from_ = from_

    def spec(self) -> ColumnSpec:
        spec = super().spec()
        return spec if self.from_ is None else replace(spec, from_=self.from_)

    def _mirror(self, other: type[_Convert]) -> _Convert:
        return other(
            self.table_name,
            self.column_name,
            type_=self.type_,
            existing_type=self.existing_type,
            **self.run_options(),
        )


_Convert = TypeVar("_Convert", bound=_ConvertOp)


@operation("encrypt_column")
class EncryptColumnOp(_ConvertOp):
    """Encrypt a plaintext column in place: widen its type, then encrypt every value in batches.

    ``from_`` (:mod:`fieldcrypt.foreign`) moves a column off another library instead: its values
    are read with the old keys (``SqlalchemyUtils(key, engine="aes-gcm")``, ``Fernet(keys)``) and
    encrypted by fieldcrypt; meanwhile declare the column ``Encrypted(..., from_=...)``.

    While it runs the column holds both plaintext and ciphertext: declare the column
    ``Encrypted(..., transitional=True)`` in the application (or read raw rows with
    ``fieldcrypt.rotation.transitional.read``) until ``fieldcrypt status`` shows no plaintext.
    Pass ``existing_type`` (the plaintext type) to make the operation reversible by autogenerate.
    """

    takes_from = True

    def reverse(self) -> DecryptColumnOp:
        return self._mirror(DecryptColumnOp)


@operation("decrypt_column")
class DecryptColumnOp(_ConvertOp):
    """Decrypt every value back to plaintext and give the column back ``existing_type``."""

    def reverse(self) -> EncryptColumnOp:
        return self._mirror(EncryptColumnOp)


@operation("reencrypt_column")
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
        **options: Unpack[RunOptions],
    ) -> None:
        super().__init__(table_name, column_name, type_=type_, **options)
        self.rotate = rotate


@operation("rebind_column")
class RebindColumnOp(_ColumnOp):
    """After a rename, move every value still bound to the column's old place to its own.

    ``type_`` is the column's type as the model declares it during the move, with
    ``bound_as=(old_table, old_column)``: the application reads both places meanwhile, and this
    operation re-encrypts the old-place values (blind index included) in resumable batches.
    Once it has run, drop ``bound_as`` from the model. Its downgrade is a no-op: with
    ``bound_as`` declared, values at either place read.
    """

    def __init__(
        self, table_name: str, column_name: str, *, type_: Encrypted[Any], **options: Unpack[RunOptions]
    ) -> None:
        super().__init__(table_name, column_name, type_=type_, **options)
        if type_.bound_as is None:
            raise ConfigurationError(
                f"rebind_column({table_name!r}, {column_name!r}): type_ names no old place; pass the "
                "column's type with bound_as=(old_table, old_column)"
            )


@operation("rotate_blind_index")
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
        **options: Unpack[RunOptions],
    ) -> None:
        super().__init__(table_name, column_name, type_=type_, **options)
        if not type_.searchable:
            raise ConfigurationError(
                f"rotate_blind_index({table_name!r}, {column_name!r}): type_ is not searchable; "
                "pass the column's Encrypted(..., searchable=True) type"
            )
        self.settle_seconds = settle_seconds
        self.rotate = rotate


@operation("rewrap_keys")
class RewrapKeysOp(MigrateOperation):
    """Wrap every data key of ``keyring`` under the master key ``to`` (a KMS key ARN, ``file:PATH``
    of a local key, or a MasterKey). No application row is read or written.

    ``remove_old=True`` also drops the copies under every other master key (then the old key can
    be disabled); its downgrade, given ``from_``, rewraps back.

    ``tenant``: ``keyring`` names a registered TenantKeyrings, and only that tenant's data keys are
    rewrapped (a BYOK tenant moving to a new key of theirs); no other tenant's record is touched.
    """

    def __init__(
        self,
        keyring: str,
        to: str | MasterKey,
        *,
        from_: str | MasterKey | None = None,
        remove_old: bool = False,
        tenant: str | None = None,
    ) -> None:
        self.keyring = keyring
        self.to = to
        self.from_ = from_
        self.remove_old = remove_old
        self.tenant = tenant

    def reverse(self) -> RewrapKeysOp:
        if self.from_ is None:
            raise ConfigurationError("rewrap_keys needs from_= to be reversed")
        return RewrapKeysOp(
            self.keyring, self.from_, from_=self.to, remove_old=self.remove_old, tenant=self.tenant
        )


@operation("upgrade_key_store")
class UpgradeKeyStoreOp(MigrateOperation):
    """Upgrade a fieldcrypt 0.1 key store for ``keyring`` (a registered keyring): add the 0.2
    columns, create its anchor, authenticate its existing keys. Idempotent; see docs/rotation.md.
    """

    def __init__(self, keyring: str) -> None:
        self.keyring = keyring

    def reverse(self) -> UpgradeKeyStoreOp:
        raise ConfigurationError("upgrade_key_store is not reversed: 0.1 ignores the columns it adds")


@operation("create_key_store")
class CreateKeyStoreOp(MigrateOperation):
    """Create the key-store table (default ``fieldcrypt_keys``) that SqlKeyStore reads."""

    def __init__(self, table_name: str = "fieldcrypt_keys", *, schema: str | None = None) -> None:
        self.table_name = table_name
        self.schema = schema

    def reverse(self) -> DropKeyStoreOp:
        return DropKeyStoreOp(self.table_name, schema=self.schema)


@operation("drop_key_store")
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

    def reverse(self) -> CreateKeyStoreOp:
        return CreateKeyStoreOp(self.table_name, schema=self.schema)
