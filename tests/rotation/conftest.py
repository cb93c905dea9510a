"""Fixtures for the rotation tests: a users table with plaintext or encrypted SSNs, and keyrings
whose key store lives in the same database (as in production)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
import sqlalchemy as sa
from rotation_helpers import create_users

import fieldcrypt
from fieldcrypt.rotation import ColumnSpec
from fieldcrypt.stores.sql import SqlKeyStore


@pytest.fixture
def keyring(engine: sa.Engine) -> fieldcrypt.Keyring:
    """Keyring "pii": a local master key, key store table fieldcrypt_keys in the test database."""
    store = SqlKeyStore(engine)
    store.create_table()
    return fieldcrypt.register(fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store))


@pytest.fixture
def users(engine: sa.Engine) -> Callable[..., sa.Table]:
    """Make the users table: ``users(rows=[(id, ssn)...], ssn_type=...)``."""

    def make(rows: Iterable[tuple[int, Any]] = (), ssn_type: Any = None) -> sa.Table:
        return create_users(engine, ssn_type, rows)

    return make


@pytest.fixture
def spec() -> ColumnSpec:
    """users.ssn, text codec, binary storage, keyring "pii"."""
    return ColumnSpec("users", "ssn", keyring="pii", codec="text")
