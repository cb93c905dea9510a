"""Online re-encryption: an application writing during the run loses nothing, and a job killed
with SIGKILL mid-table can be rerun to completion (PostgreSQL and MariaDB)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rotation_helpers import create_users, encrypted_rows, raw, ssn

import fieldcrypt
from fieldcrypt.rotation import ColumnSpec, reencrypt_column, verify
from fieldcrypt.rotation.spec import Storage

pytestmark = pytest.mark.parametrize("engine", ["postgresql", "mariadb"], indirect=True)


def test_concurrent_writer_loses_no_update(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, spec: ColumnSpec
) -> None:
    """A thread rewriting rows while reencrypt runs: every value it wrote is there at the end."""
    table = create_users(engine, sa.LargeBinary, encrypted_rows(keyring, 400))
    new = keyring.rotate().key_id
    place = fieldcrypt.Place("users", "ssn")
    written: dict[int, str] = {}
    started = threading.Event()
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            row_id = 1 + (n * 37) % 400
            value = f"new-{n:07d}"
            with engine.begin() as conn:
                conn.execute(
                    table.update().where(table.c.id == row_id).values(ssn=keyring.encrypt(value, place))
                )
            written[row_id] = value
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(5)

    def slow(report: Any) -> None:
        time.sleep(0.02)  # give the writer time to race the batches

    report = reencrypt_column(engine, spec, batch_size=20, progress=slow)
    stop.set()
    thread.join()
    assert len(written) > 20
    stored = raw(engine)
    assert len(stored) == 400
    for row_id, blob in stored.items():
        expected = written.get(row_id, ssn(row_id))
        assert keyring.decrypt(blob, place) == expected.encode(), row_id
    assert report.failed == 0
    assert {keyring.key_id_of(b) for b in stored.values()} == {new}


SCRIPT = textwrap.dedent(
    """
    import sys, time
    import sqlalchemy as sa
    import fieldcrypt
    from fieldcrypt.stores.sql import SqlKeyStore
    from fieldcrypt.rotation import ColumnSpec, reencrypt_column

    url, key_file, marker = sys.argv[1:4]
    engine = sa.create_engine(url)
    fieldcrypt.register(fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), SqlKeyStore(engine)))

    def announce(report):
        if report.batches == 3:
            open(marker, "w").close()   # the parent kills us from here on
        time.sleep(0.05)

    reencrypt_column(engine, ColumnSpec("users", "ssn", keyring="pii"), batch_size=25, progress=announce)
    """
)


def test_kill_9_mid_table_then_rerun_completes(engine: sa.Engine, tmp_path: Path, spec: ColumnSpec) -> None:
    """SIGKILL a reencrypt subprocess mid-table; the rerun leaves every row decryptable on the new key."""
    key_file = tmp_path / "master.key"
    master = fieldcrypt.LocalMasterKey.write_new(key_file)
    from fieldcrypt.stores.sql import SqlKeyStore

    store = SqlKeyStore(engine)
    store.create_table()
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", master, store))
    create_users(engine, sa.LargeBinary, encrypted_rows(keyring, 500))
    old = keyring.current_key_id()
    new = keyring.rotate().key_id
    marker = tmp_path / "started"
    url = engine.url.render_as_string(hide_password=False)
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, url, str(key_file), str(marker)])
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert marker.exists(), "the job never got going"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    midway = {keyring.key_id_of(b) for b in raw(engine).values()}
    assert midway == {old, new}  # killed mid-table: some rows moved, some not
    report = reencrypt_column(engine, spec, batch_size=100)
    stored = raw(engine)
    assert len(stored) == 500
    assert report.failed == 0
    assert {keyring.key_id_of(b) for b in stored.values()} == {new}
    checked = verify(engine, ColumnSpec("users", "ssn", keyring="pii", codec="text", storage=Storage.BINARY))
    assert (checked.decrypted, checked.failed) == (500, 0)
    place = fieldcrypt.Place("users", "ssn")
    assert all(keyring.decrypt(b, place) == ssn(i).encode() for i, b in stored.items())
