"""Wrap every data key of "pii" under a second master key too (no row of users is touched).

A real revision names the destination literally (a KMS key ARN). This example reads it from
FIELDCRYPT_REWRAP_TO (a KMS key ARN or file:PATH) so the tests can point it at their own key.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import os

from fieldcrypt.alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rewrap_keys(keyring="pii", to=os.environ["FIELDCRYPT_REWRAP_TO"])


def downgrade() -> None:
    # The old master key's copies were kept (remove_old=False), so the way back needs nothing.
    pass
