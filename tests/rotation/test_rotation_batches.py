"""How a batch reaches the database: a few statements per batch (binary arrays on PostgreSQL, a
temporary table and one UPDATE ... JOIN on MariaDB), and the next page read ahead while this one
is written, without losing an application's write or a checkpoint's meaning."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rotation_helpers import create_users, encrypted_rows, raw, ssn

import fieldcrypt
from fieldcrypt.rotation import ColumnSpec, reencrypt_column
from fieldcrypt.rotation import engine as rotation_engine
from fieldcrypt.rotation.checkpoint import Checkpoint
from fieldcrypt.rotation.writer import BATCH_TABLE

pytestmark = pytest.mark.parametrize("engine", ["postgresql", "mariadb"], indirect=True)
PLACE = fieldcrypt.Place("users", "ssn")


class Boom(Exception):
    """Stands in for a crash during a write."""


def statements(engine: sa.Engine) -> list[str]:
    """Every statement the engine's connections send from now on (the list grows)."""
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    return sent


def test_a_batch_is_one_update_whatever_its_size(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, spec: ColumnSpec
) -> None:
    """300 rows in one batch: one UPDATE (binary bytea arrays under psycopg), stored bytes are the new ciphertext."""
    create_users(engine, sa.LargeBinary, encrypted_rows(keyring, 300))
    new = keyring.rotate().key_id
    sent = statements(engine)
    report = reencrypt_column(engine, spec, batch_size=300)
    assert (report.written, report.batches) == (300, 1)
    updates = [s for s in sent if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    if engine.dialect.name == "postgresql":
        assert "unnest(CAST(%(k0)b AS INTEGER[])" in updates[0]  # binary, not escaped text
        assert "CAST(%(old)b AS BYTEA[]), CAST(%(new)b AS BYTEA[])" in updates[0]
    else:
        assert f"JOIN {BATCH_TABLE} AS v" in updates[0]
        assert sum(s.lstrip().upper().startswith("INSERT") for s in sent) == 1  # multi-row
    stored = raw(engine)
    for row_id, blob in stored.items():
        assert ssn(row_id).encode() not in blob  # ciphertext, never the SSN
        assert keyring.key_id_of(blob) == new
        assert keyring.decrypt(blob, PLACE) == ssn(row_id).encode()


def test_an_application_write_to_a_page_read_ahead_is_kept(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, spec: ColumnSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page 2 is read while page 1 is written; a row of it the application rewrites then survives."""
    table = create_users(engine, sa.LargeBinary, encrypted_rows(keyring, 20))
    new = keyring.rotate().key_id
    app_value = keyring.encrypt("999-99-9999", PLACE)
    page_two_read = threading.Event()
    real_changes, real_write = rotation_engine._changes, rotation_engine.write_batch
    written: list[int] = []

    def changes(worker: Any, target: Any, rows: Any) -> Any:
        if rows[0][0] == 11:
            page_two_read.set()
        return real_changes(worker, target, rows)

    def write(conn: sa.Connection, target: Any, batch: Any) -> int:
        if not written:  # page 1's write: page 2 is being read ahead meanwhile
            assert page_two_read.wait(30)
            with engine.begin() as other:
                other.execute(table.update().where(table.c.id == 15).values(ssn=app_value))
        written.append(real_write(conn, target, batch))
        return written[-1]

    monkeypatch.setattr(rotation_engine, "_changes", changes)
    monkeypatch.setattr(rotation_engine, "write_batch", write)
    report = reencrypt_column(engine, spec, batch_size=10)
    assert written == [10, 9]  # row 15 no longer held what page 2 read: not overwritten
    assert (report.written, report.conflicts, report.failed) == (19, 0, 0)
    stored = raw(engine)
    assert stored[15] == app_value
    assert {keyring.key_id_of(v) for v in stored.values()} == {new}


def test_a_crash_while_the_next_page_is_read_ahead_resumes_after_the_last_commit(
    engine: sa.Engine,
    keyring: fieldcrypt.Keyring,
    spec: ColumnSpec,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The checkpoint names the last committed page, never one only read ahead; the rerun finishes."""
    create_users(engine, sa.LargeBinary, encrypted_rows(keyring, 30))
    new = keyring.rotate().key_id
    real_write = rotation_engine.write_batch
    calls: list[int] = []

    def write(conn: sa.Connection, target: Any, batch: Any) -> int:
        calls.append(len(batch))
        if len(calls) == 2:
            raise Boom
        return real_write(conn, target, batch)

    monkeypatch.setattr(rotation_engine, "write_batch", write)
    with pytest.raises(Boom):
        reencrypt_column(engine, spec, batch_size=10, checkpoint_dir=str(tmp_path))
    checkpoint = Checkpoint(str(tmp_path), "users.ssn.reencrypt.0of1")
    assert checkpoint.load(f"reencrypt:{new}") == [10]
    monkeypatch.setattr(rotation_engine, "write_batch", real_write)
    report = reencrypt_column(engine, spec, batch_size=10, checkpoint_dir=str(tmp_path))
    assert (report.resumed_after, report.written) == ([10], 20)
    stored = raw(engine)
    assert {keyring.key_id_of(v) for v in stored.values()} == {new}
    assert all(keyring.decrypt(v, PLACE) == ssn(k).encode() for k, v in stored.items())
