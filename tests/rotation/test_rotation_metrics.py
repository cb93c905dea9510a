"""Bulk operations report their progress in fieldcrypt.rotation.rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from rotation_helpers import encrypted_rows, raw, ssn

import fieldcrypt
from fieldcrypt.rotation import ColumnSpec, encrypt_column, reencrypt_column, schema
from fieldcrypt.rotation.spec import Storage
from metrics_helpers import Recorder, attrs


def test_a_rotation_run_counts_rows_processed_and_failed(
    recorder: Recorder, engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """Re-encrypting 7 rows in batches of 3, one tampered, counts 7 processed and 1 failed; a dry run counts nothing."""
    rows = encrypted_rows(keyring, 7)
    bad = bytearray(rows[4][1])
    bad[-1] ^= 1
    rows[4] = (5, bytes(bad))
    users(rows=rows, ssn_type=sa.LargeBinary)
    keyring.rotate()
    before = recorder.collect()
    reencrypt_column(engine, spec, dry_run=True)
    assert "fieldcrypt.rotation.rows" not in recorder.delta(before)
    report = reencrypt_column(engine, spec, batch_size=3)
    assert (report.scanned, report.failed) == (7, 1)
    assert ssn(1).encode() not in raw(engine)[1]  # stored as ciphertext
    where = {"operation": "reencrypt", "table": "users", "column": "ssn"}
    assert recorder.delta(before)["fieldcrypt.rotation.rows"] == {
        attrs(**where, outcome="processed"): 7,
        attrs(**where, outcome="failed"): 1,
    }


def test_encrypting_a_plaintext_column_counts_its_rows(
    recorder: Recorder, engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """encrypt_column over 4 plaintext rows counts 4 processed under operation encrypt."""
    users(rows=[(i, ssn(i)) for i in range(1, 5)])
    with engine.begin() as conn:
        schema.widen(conn, "users", "ssn", Storage.BINARY)
    before = recorder.collect()
    encrypt_column(engine, spec)
    assert all(ssn(i) not in repr(v) for i, v in raw(engine).items())  # ciphertext, binary or text
    where = {"operation": "encrypt", "table": "users", "column": "ssn"}
    assert recorder.delta(before)["fieldcrypt.rotation.rows"] == {attrs(**where, outcome="processed"): 4}
