"""fieldcrypt's Alembic operations as typed functions, for revisions checked by ``mypy --strict``.

Alembic's ``op`` stub lists only Alembic's own operations, so ``op.encrypt_column(...)`` type-checks
as an unknown attribute. These functions run the same operations through ``op.invoke``::

    from fieldcrypt.alembic import op as fc_op

    def upgrade() -> None:
        fc_op.encrypt_column("users", "ssn", type_=Encrypted(sa.String(11), keyring="pii"),
                             existing_type=sa.String(11))
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from fieldcrypt.alembic.ops import (
    CreateKeyStoreOp,
    DecryptColumnOp,
    DropKeyStoreOp,
    EncryptColumnOp,
    ReencryptColumnOp,
    RewrapKeysOp,
    RotateBlindIndexOp,
)
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.sqlalchemy.types import Encrypted

__all__ = [
    "create_key_store",
    "decrypt_column",
    "drop_key_store",
    "encrypt_column",
    "reencrypt_column",
    "rewrap_keys",
    "rotate_blind_index",
]


def encrypt_column(
    table_name: str,
    column_name: str,
    *,
    type_: Encrypted[Any],
    existing_type: sa.types.TypeEngine[Any] | None = None,
    batch_size: int = 1000,
    max_kms_calls_per_second: float | None = None,
    schema: str | None = None,
) -> None:
    """``op.encrypt_column``: widen the column, then encrypt every plaintext value in batches."""
    op.invoke(
        EncryptColumnOp(
            table_name,
            column_name,
            type_=type_,
            existing_type=existing_type,
            batch_size=batch_size,
            max_kms_calls_per_second=max_kms_calls_per_second,
            schema=schema,
        )
    )


def decrypt_column(
    table_name: str,
    column_name: str,
    *,
    type_: Encrypted[Any],
    existing_type: sa.types.TypeEngine[Any] | None = None,
    batch_size: int = 1000,
    max_kms_calls_per_second: float | None = None,
    schema: str | None = None,
) -> None:
    """``op.decrypt_column``: decrypt every value, then give the column back ``existing_type``."""
    op.invoke(
        DecryptColumnOp(
            table_name,
            column_name,
            type_=type_,
            existing_type=existing_type,
            batch_size=batch_size,
            max_kms_calls_per_second=max_kms_calls_per_second,
            schema=schema,
        )
    )


def reencrypt_column(
    table_name: str,
    column_name: str,
    *,
    type_: Encrypted[Any],
    rotate: bool = False,
    batch_size: int = 1000,
    max_kms_calls_per_second: float | None = None,
    schema: str | None = None,
) -> None:
    """``op.reencrypt_column``: move every value to the keyring's current data key."""
    op.invoke(
        ReencryptColumnOp(
            table_name,
            column_name,
            type_=type_,
            rotate=rotate,
            batch_size=batch_size,
            max_kms_calls_per_second=max_kms_calls_per_second,
            schema=schema,
        )
    )


def rotate_blind_index(
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
    """``op.rotate_blind_index``: a new blind-index key, then every row's index recomputed."""
    op.invoke(
        RotateBlindIndexOp(
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


def rewrap_keys(
    keyring: str, to: str | MasterKey, *, from_: str | MasterKey | None = None, remove_old: bool = False
) -> None:
    """``op.rewrap_keys``: wrap every data key of ``keyring`` under the master key ``to``."""
    op.invoke(RewrapKeysOp(keyring, to, from_=from_, remove_old=remove_old))


def create_key_store(table_name: str = "fieldcrypt_keys", *, schema: str | None = None) -> None:
    """``op.create_key_store``: the key-store table SqlKeyStore reads."""
    op.invoke(CreateKeyStoreOp(table_name, schema=schema))


def drop_key_store(
    table_name: str = "fieldcrypt_keys", *, schema: str | None = None, destroy_all_keys: bool = False
) -> None:
    """``op.drop_key_store``: drops every data key in it, and so every value under them (refused
    unless ``destroy_all_keys=True``)."""
    op.invoke(DropKeyStoreOp(table_name, schema=schema, destroy_all_keys=destroy_all_keys))
