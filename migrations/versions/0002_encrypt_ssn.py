"""Encrypt users.ssn in place (adoption); the downgrade decrypts it back to VARCHAR(11).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.encrypt_column("users", "ssn", keyring="pii", existing_type=sa.String(11))


def downgrade() -> None:
    op.decrypt_column("users", "ssn", keyring="pii", existing_type=sa.String(11))
