"""SQL status names the keyring's authenticated current key, never a newer planted one (it used to
pick the newest active row by created_at, as dry runs did)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from rotation_helpers import encrypted_rows

import fieldcrypt
from fieldcrypt.rotation import ColumnSpec, status
from test_planted_keys import plant_record


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_sql_status_names_the_authenticated_current_key(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """SQL status: current key and values left to move are the keyring's choice, not the planted key's."""
    users(rows=encrypted_rows(keyring, 3), ssn_type=sa.LargeBinary)
    current = keyring.current_key_id()
    assert plant_record(keyring) != current
    result = status(engine, spec)
    assert (result.current_key, result.not_current) == (current, 0)
