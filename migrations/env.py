"""Alembic environment for the fieldcrypt example migrations.

The three fieldcrypt lines every project needs are marked (1), (2), (3).
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

import fieldcrypt.alembic  # (1) registers op.encrypt_column, op.reencrypt_column, op.rewrap_keys...
from fieldcrypt.config import build_keyring, load

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url = os.environ.get("FIELDCRYPT_DATABASE_URL") or config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    # Schema-only revisions render as SQL; fieldcrypt's data operations refuse offline mode.
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    build_keyring(load(database_url=url))  # (2) register the keyring the revisions name ("pii")
    engine = sa.create_engine(url or "", poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=None,
            # (3) one transaction per revision: the data operations commit batch by batch inside
            # autocommit_block(), which commits the revision's earlier statements first.
            transaction_per_migration=True,
            render_item=fieldcrypt.alembic.render_item,
            process_revision_directives=fieldcrypt.alembic.process_revision_directives,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
