"""Encrypt users.ssn in place (adoption); the downgrade decrypts it back to VARCHAR(11).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa

from fieldcrypt.alembic import op  # typed: Alembic's own `op` stub cannot list fieldcrypt's operations
from fieldcrypt.sqlalchemy import Encrypted

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# The column as the model declares it: the one description of its keyring, codec and storage.
SSN = Encrypted(sa.String(11), keyring="pii")


def upgrade() -> None:
    op.encrypt_column("users", "ssn", type_=SSN, existing_type=sa.String(11))


def downgrade() -> None:
    op.decrypt_column("users", "ssn", type_=SSN, existing_type=sa.String(11))
