"""Rotate the data key of keyring "pii" and move every users.ssn value to it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa

from fieldcrypt.alembic import op
from fieldcrypt.sqlalchemy import Encrypted

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.reencrypt_column("users", "ssn", type_=Encrypted(sa.String(11), keyring="pii"), rotate=True)


def downgrade() -> None:
    # Nothing to undo: values under the newer data key read as well as under the old one.
    pass
