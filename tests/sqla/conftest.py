"""Fixtures for the SQLAlchemy integration tests: a registered "pii" keyring, the tables, and an
Alembic project for the autogenerate tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import alembic
import pytest
import sqlalchemy as sa
from alembic.config import Config
from sqla_models import Base

import fieldcrypt
from fieldcrypt.testing import local_keyring


@pytest.fixture
def keyring() -> fieldcrypt.Keyring:
    """Keyring "pii": a fresh local master key, keys in memory."""
    return local_keyring("pii")


@pytest.fixture
def db(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> Iterator[sa.Engine]:
    """Each of the three databases with the test models' tables created."""
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)


# env.py as docs/rotation.md shows it: import fieldcrypt.alembic and pass its two hooks. A test may
# hand its own models over in ``config.attributes`` (Alembic's way to pass objects to env.py).
ENV_PY = """
from alembic import context
from sqlalchemy import create_engine

import fieldcrypt.alembic  # registers the operations
import sqla_models

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes.get("target_metadata", sqla_models.Base.metadata),
        render_item=fieldcrypt.alembic.render_item,
        process_revision_directives=fieldcrypt.alembic.process_revision_directives,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""


@pytest.fixture
def alembic_config(tmp_path: Path) -> Callable[..., Config]:
    """An Alembic project in tmp_path (generic template, the env.py above) against an engine."""

    def make(engine: sa.Engine, target_metadata: sa.MetaData | None = None) -> Config:
        scripts = tmp_path / "migrations"
        (scripts / "versions").mkdir(parents=True)
        template = Path(alembic.__file__).parent / "templates" / "generic" / "script.py.mako"
        shutil.copy(template, scripts / "script.py.mako")
        (scripts / "env.py").write_text(ENV_PY)
        config = Config()
        config.set_main_option("script_location", str(scripts))
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
        if target_metadata is not None:
            config.attributes["target_metadata"] = target_metadata
        return config

    return make
