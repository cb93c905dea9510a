"""Rotation and migration: the batch engine under the Alembic operations and the CLI.

Entry points: :func:`encrypt_column`, :func:`reencrypt_column`, :func:`decrypt_column`,
:func:`reindex_column` (blind-index backfill), :func:`rebind_column` (after a rename), :func:`status`, :func:`verify`. See
docs/rotation.md for the runbooks.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fieldcrypt.rotation.engine import Report, run
from fieldcrypt.rotation.inspect import ColumnStatus, Verification, status, verify
from fieldcrypt.rotation.spec import ColumnSpec, Storage
from fieldcrypt.rotation.table import Segment
from fieldcrypt.tenant_rows import TenantRows

__all__ = [
    "ColumnSpec",
    "ColumnStatus",
    "Report",
    "Segment",
    "Storage",
    "TenantRows",
    "Verification",
    "decrypt_column",
    "encrypt_column",
    "rebind_column",
    "reencrypt_column",
    "reindex_column",
    "run",
    "status",
    "verify",
]


def encrypt_column(bind: sa.Engine | sa.Connection, spec: ColumnSpec, **options: Any) -> Report:
    """Encrypt every plaintext value in place (the column must already be wide enough)."""
    return run(bind, spec, "encrypt", **options)


def reencrypt_column(bind: sa.Engine | sa.Connection, spec: ColumnSpec, **options: Any) -> Report:
    """Move every value to the keyring's current data key."""
    return run(bind, spec, "reencrypt", **options)


def decrypt_column(bind: sa.Engine | sa.Connection, spec: ColumnSpec, **options: Any) -> Report:
    """Write every value back as plaintext (the database's text form of it)."""
    return run(bind, spec, "decrypt", **options)


def reindex_column(bind: sa.Engine | sa.Connection, spec: ColumnSpec, **options: Any) -> Report:
    """Recompute the blind-index column under the newest blind-index key."""
    return run(bind, spec, "reindex", **options)


def rebind_column(bind: sa.Engine | sa.Connection, spec: ColumnSpec, **options: Any) -> Report:
    """Move every value still bound to the column's old place (``spec.bound_as``) to its own."""
    return run(bind, spec, "rebind", **options)
