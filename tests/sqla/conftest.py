"""Fixtures for the SQLAlchemy integration tests: a registered "pii" keyring and the tables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
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
