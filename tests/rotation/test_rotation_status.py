"""status (metadata only), verify (decrypt all), and crypto-shredding as status and verify see it."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from rotation_helpers import encrypted_rows

import fieldcrypt
from fieldcrypt.rotation import ColumnSpec, admin, status, verify


def test_status_counts_per_data_key_master_key_plaintext_and_null(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """status splits rows into NULL, plaintext, and per data key / master key, naming the current key."""
    old_rows = encrypted_rows(keyring, 4)
    old = keyring.current_key_id()
    new = keyring.rotate().key_id
    rows = old_rows + encrypted_rows(keyring, 3, start=5) + [(8, b"123-45-6789"), (9, None)]
    users(rows=rows, ssn_type=sa.LargeBinary)
    result = status(engine, spec, batch_size=4)
    assert (result.rows, result.null, result.plaintext, result.encrypted) == (9, 1, 1, 7)
    assert result.by_data_key == {old: 4, new: 3}
    assert result.by_master_key == {keyring.master_key.key_id: 7}
    assert (result.current_key, result.not_current) == (new, 4)


def test_destroyed_key_values_raise_key_destroyed_and_are_counted(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """After destroy, values under the key raise KeyDestroyedError; status and verify count them."""
    doomed_rows = encrypted_rows(keyring, 3)
    doomed = keyring.current_key_id()
    keyring.rotate()
    users(rows=doomed_rows + encrypted_rows(keyring, 2, start=4), ssn_type=sa.LargeBinary)
    record = admin.destroy(keyring, doomed)
    assert (record.status, dict(record.wraps)) == (fieldcrypt.Status.DESTROYED, {})
    assert dict(keyring.key_store.get(doomed).wraps) == {}  # type: ignore[union-attr]
    with pytest.raises(
        fieldcrypt.KeyDestroyedError, match=rf"^cannot decrypt users\.ssn: data key {doomed} was destroyed$"
    ):
        keyring.decrypt(doomed_rows[0][1], fieldcrypt.Place("users", "ssn"))
    result = status(engine, spec)
    assert (result.destroyed, result.unknown_key, result.encrypted) == (3, 0, 5)
    checked = verify(engine, spec)
    assert (checked.decrypted, checked.failed, checked.ok) == (2, 3, False)
    assert checked.failures[0] == ("1", f"cannot decrypt users.ssn: data key {doomed} was destroyed")


def test_verify_lists_tampered_rows_without_leaking_values(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """verify lists the row of a tampered value with the opaque message only."""
    rows = encrypted_rows(keyring, 3)
    rows[1] = (2, rows[1][1][:-1] + bytes([rows[1][1][-1] ^ 0xFF]))
    users(rows=rows, ssn_type=sa.LargeBinary)
    checked = verify(engine, spec)
    assert checked.failures == [("2", "cannot decrypt users.ssn")]
    assert (checked.decrypted, checked.rows) == (2, 3)
