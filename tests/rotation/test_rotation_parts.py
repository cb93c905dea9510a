"""Smaller parts of the engine: the transitional read mode, byte-exact compare-and-set and
checkpoint files (the token bucket is tested with the core, tests/test_ratelimit.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rotation_helpers import raw

import fieldcrypt
from fieldcrypt.failures import MAX_FAILURES_LISTED, note_failure
from fieldcrypt.rotation import ColumnSpec, transitional
from fieldcrypt.rotation.checkpoint import Checkpoint
from fieldcrypt.rotation.table import Target
from fieldcrypt.rotation.writer import Change, write_batch


def test_transitional_read_accepts_plaintext_and_ciphertext(local_keyring: fieldcrypt.Keyring) -> None:
    """Mid-adoption, plaintext reads as itself, ciphertext decrypts, a damaged ciphertext raises."""
    fieldcrypt.register(local_keyring)
    spec = ColumnSpec("users", "age", keyring="pii", codec="int")
    blob = local_keyring.encrypt(b"42", fieldcrypt.Place("users", "age"))
    assert transitional.read(spec, b"41") == 41
    assert transitional.read(spec, blob) == 42
    assert transitional.read(spec, None) is None
    with pytest.raises(fieldcrypt.DecryptionError, match=r"^cannot decrypt users\.age$"):
        transitional.read(spec, blob[:-1] + bytes([blob[-1] ^ 1]))


def test_compare_and_set_is_byte_exact_on_every_database(engine: sa.Engine, users: Any) -> None:
    """A row changed from 'abc' to 'ABC ' is not overwritten, even under MariaDB's case-blind collation."""
    users(rows=[(1, "ABC "), (2, "abc")])
    with engine.connect() as conn:
        target = Target.reflect(conn, "users", "ssn")
    with engine.begin() as conn:
        written = write_batch(conn, target, [Change((1,), "abc", "new-1"), Change((2,), "abc", "new-2")])
    assert written == 1
    assert raw(engine) == {1: "ABC ", 2: "new-2"}


def test_checkpoint_round_trip_and_mismatch(tmp_path: Path) -> None:
    """A checkpoint is reused only by the same job and target key; clear() removes it."""
    checkpoint = Checkpoint(tmp_path, "users.ssn.reencrypt.0of1")
    checkpoint.save("reencrypt:abc", (41,))
    assert checkpoint.load("reencrypt:abc") == [41]
    assert checkpoint.load("reencrypt:def") is None  # the target key changed: start over
    (tmp_path / "users.ssn.reencrypt.0of1.json").write_text("{not json")
    assert checkpoint.load("reencrypt:abc") is None
    checkpoint.clear()
    assert not list(tmp_path.iterdir())


def test_failure_list_is_capped_and_never_quotes_a_value() -> None:
    """A failure lists the row key with the DecryptionError text, or the error type alone; at most 1000."""
    failures: list[tuple[str, str]] = []
    note_failure(failures, 7, fieldcrypt.DecryptionError(table="users", column="ssn", row="7"))
    note_failure(failures, (1, "a"), ValueError("123-45-6789 is not a date"))
    assert failures == [
        ("7", "cannot decrypt users.ssn (row 7)"),
        ("(1, 'a')", "ValueError: unreadable value"),
    ]
    for i in range(MAX_FAILURES_LISTED + 5):
        note_failure(failures, i, TypeError())
    assert len(failures) == MAX_FAILURES_LISTED == 1000
