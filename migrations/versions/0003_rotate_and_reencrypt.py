"""Rotate the data key of keyring "pii" and move every users.ssn value to it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.reencrypt_column("users", "ssn", keyring="pii", rotate=True)


def downgrade() -> None:
    # Nothing to undo: values under the newer data key read as well as under the old one.
    pass
