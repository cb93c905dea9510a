"""What each fieldcrypt Alembic operation does when a migration runs (see ops.py)."""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from alembic.operations import Operations

from fieldcrypt import progress
from fieldcrypt.alembic.ops import (
    CreateKeyStoreOp,
    DecryptColumnOp,
    DropKeyStoreOp,
    EncryptColumnOp,
    RebindColumnOp,
    ReencryptColumnOp,
    RewrapKeysOp,
    RotateBlindIndexOp,
    UpgradeKeyStoreOp,
    _ColumnOp,
)
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keys.record import Purpose
from fieldcrypt.keys.resolve import master_key_from
from fieldcrypt.registry import get_keyring, get_tenant_keyrings
from fieldcrypt.rotation import admin, engine, inspect, schema
from fieldcrypt.rotation.rowkeys import one_tenant
from fieldcrypt.rotation.spec import ColumnSpec, Storage
from fieldcrypt.sqlalchemy.spec import check_column_type, check_plaintext_type
from fieldcrypt.stores.sql import key_store_table
from fieldcrypt.tenant_rows import TenantRows

log = logging.getLogger("fieldcrypt")


def _online(operations: Operations, name: str) -> None:
    if operations.get_context().as_sql:
        raise ConfigurationError(
            f"op.{name}() reads and rewrites rows (or key-store rows), which offline --sql mode cannot "
            f"do: run this migration online (alembic upgrade without --sql), or run the matching "
            f"`fieldcrypt` CLI command against the database"
        )


def _spec(op: _ColumnOp) -> tuple[ColumnSpec, TenantRows | None]:
    """The operation's column, and with ``tenant=`` that tenant's rows under its keyring alone."""
    spec = op.spec()
    if op.tenant is None:
        return spec, None
    return one_tenant(spec, spec.resolve_keyring(op.tenant))


def _run(
    operations: Operations, op: _ColumnOp, spec: ColumnSpec, action: str, rows: TenantRows | None
) -> engine.Report:
    # A migration has no progress bar: lines on the fieldcrypt.progress logger (INFO) instead.
    scope = "" if rows is None else f" (tenant {rows.tenant})"
    lines = progress.logged(f"{action} {spec.table}.{spec.column}{scope}")
    report = engine.run(
        operations.get_bind(),
        spec,
        action,
        batch_size=op.batch_size,
        max_kms_calls_per_second=op.max_kms_calls_per_second,
        progress=lambda r: lines.update(r.resumed_rows + r.scanned, r.total),
        tenant=rows,
    )
    lines.finish()
    if report.failed or report.conflicts:
        # Stop the migration rather than stamp a revision over rows that were not converted.
        first = report.failures[0][1] if report.failures else "rows kept changing"
        raise ConfigurationError(
            f"{action} of {spec.table}.{spec.column}: {report.failed} rows failed, {report.conflicts} "
            f"conflicted (first: {first}); run `fieldcrypt verify {spec.table}.{spec.column}` for the list"
        )
    if report.shredded:
        log.info(
            "fieldcrypt: %s of %s.%s left %d values of shredded subjects as they are",
            action,
            spec.table,
            spec.column,
            report.shredded,
        )
    return report


@Operations.implementation_for(EncryptColumnOp)
def encrypt_column(operations: Operations, op: EncryptColumnOp) -> None:
    _online(operations, "encrypt_column")
    spec, rows = _spec(op)
    # Key-store writes go through the store's own connection: commit the migration's transaction
    # first (autocommit_block), or SQLite's single writer lock would wait on itself.
    with operations.get_context().autocommit_block():
        # Before the widening, which stays if a later step fails.
        inspect.check_can_encrypt(spec, operations.get_bind())
        check_column_type(operations.get_bind(), spec)
        inspect.check_storage(operations.get_bind(), spec)
        schema.widen(operations.get_bind(), spec.table, spec.column, spec.the_storage)
        _run(operations, op, spec, "encrypt", rows)


@Operations.implementation_for(DecryptColumnOp)
def decrypt_column(operations: Operations, op: DecryptColumnOp) -> None:
    _online(operations, "decrypt_column")
    if op.existing_type is not None:
        schema.require_type(
            op.existing_type, f"decrypt_column({op.table_name!r}, {op.column_name!r}) existing_type"
        )
    spec, rows = _spec(op)
    conn = operations.get_bind()
    if op.existing_type is None and conn.dialect.name != "sqlite" and spec.the_storage is Storage.BINARY:
        raise ConfigurationError(
            f"decrypt_column({op.table_name!r}, {op.column_name!r}) needs existing_type= (the plaintext "
            f"column type to restore, e.g. sa.String(11))"
        )
    if op.existing_type is not None:
        check_plaintext_type(op.existing_type, spec, "existing_type")
    if rows is not None and op.existing_type is not None:
        raise ConfigurationError(
            f"decrypt_column({op.table_name!r}, {op.column_name!r}, tenant=...): existing_type changes "
            "the whole column's type, not one tenant's; decrypt each tenant, then give the type alone"
        )
    with operations.get_context().autocommit_block():
        _run(operations, op, spec, "decrypt", rows)
        if op.existing_type is not None:
            schema.narrow(operations.get_bind(), spec.table, spec.column, op.existing_type, spec.the_storage)


@Operations.implementation_for(ReencryptColumnOp)
def reencrypt_column(operations: Operations, op: ReencryptColumnOp) -> None:
    _online(operations, "reencrypt_column")
    spec, rows = _spec(op)
    with operations.get_context().autocommit_block():
        if op.rotate:
            if spec.tenant_column is not None:
                raise ConfigurationError(
                    f"reencrypt_column({op.table_name!r}, {op.column_name!r}, rotate=True): each tenant "
                    "has its own keys; rotate one tenant's (tenant=...)"
                )
            spec.resolve_keyring().rotate()
        _run(operations, op, spec, "reencrypt", rows)


@Operations.implementation_for(RebindColumnOp)
def rebind_column(operations: Operations, op: RebindColumnOp) -> None:
    _online(operations, "rebind_column")
    spec, rows = _spec(op)
    with operations.get_context().autocommit_block():
        _run(operations, op, spec, "rebind", rows)


@Operations.implementation_for(RotateBlindIndexOp)
def rotate_blind_index(operations: Operations, op: RotateBlindIndexOp) -> None:
    _online(operations, "rotate_blind_index")
    spec, rows = _spec(op)
    keyring = spec.resolve_keyring()
    with operations.get_context().autocommit_block():
        if op.rotate:
            keyring.rotate(Purpose.BLIND_INDEX)
            # Other processes pick the new index key up within refresh_every; until then they may
            # still write old-key tokens, which the backfill must come after.
            settle = (
                op.settle_seconds if op.settle_seconds is not None else keyring.refresh_every.total_seconds()
            )
            time.sleep(settle)
        _run(operations, op, spec, "reindex", rows)
        # Only keys no column uses any more: another searchable column of the keyring may still
        # hold old-key tokens until its own reindex (its rotate_blind_index retires them then).
        _retired, kept = admin.retire_unused_index_keys(keyring)
        for key_id, users in kept.items():
            log.info("fieldcrypt: blind-index key %s kept, still used by %s", key_id, ", ".join(users))


@Operations.implementation_for(RewrapKeysOp)
def rewrap_keys(operations: Operations, op: RewrapKeysOp) -> None:
    _online(operations, "rewrap_keys")
    destination = master_key_from(op.to)
    if op.tenant is None:
        keyring = get_keyring(op.keyring)
    else:
        keyring = get_tenant_keyrings(op.keyring).keyring_for(op.tenant)  # that tenant's keys only
    with operations.get_context().autocommit_block():
        admin.rewrap(keyring, destination, remove_old=op.remove_old)


@Operations.implementation_for(UpgradeKeyStoreOp)
def upgrade_key_store(operations: Operations, op: UpgradeKeyStoreOp) -> None:
    _online(operations, "upgrade_key_store")
    # The keyring's own store does the work, on its own connection, committed at once: the
    # columns and the anchor are idempotent, and holding them in the migration's transaction
    # would make the key store's own writes wait on it (SQLite has one writer).
    with operations.get_context().autocommit_block():
        admin.upgrade(get_keyring(op.keyring))


@Operations.implementation_for(CreateKeyStoreOp)
def create_key_store(operations: Operations, op: CreateKeyStoreOp) -> None:
    table = key_store_table(sa.MetaData(), op.table_name, op.schema)
    # Alembic copies columns that belong to a table itself (no need for SQLAlchemy's private Column._copy).
    operations.create_table(op.table_name, *table.columns, schema=op.schema)
    for index in table.indexes:
        assert index.name is not None
        operations.create_index(
            index.name, op.table_name, [c.name for c in index.columns], schema=op.schema, unique=index.unique
        )


@Operations.implementation_for(DropKeyStoreOp)
def drop_key_store(operations: Operations, op: DropKeyStoreOp) -> None:
    if op.destroy_all_keys is not True:
        raise ConfigurationError(
            f"op.drop_key_store({op.table_name!r}) deletes every data key, and every encrypted value "
            "with them, in this database and in any backup restored after it is applied; if that is "
            "what you want, write op.drop_key_store(..., destroy_all_keys=True)"
        )
    operations.drop_table(op.table_name, schema=op.schema)
