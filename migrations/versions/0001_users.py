"""Create the users table (plaintext SSN, as an application starts) and the key store.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fieldcrypt.alembic import op as fc_op  # fieldcrypt's operations, typed for mypy --strict

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(120), nullable=False),
        sa.Column("ssn", sa.String(11), nullable=True),
    )
    fc_op.create_key_store()


def downgrade() -> None:
    fc_op.drop_key_store(destroy_all_keys=True)  # the example's downgrade erases its keys
    op.drop_table("users")
