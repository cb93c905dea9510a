"""Moving 100,000 sqlalchemy-utils values to fieldcrypt, with a kill -9 mid-run, on PostgreSQL and MariaDB.

Each round fills ``people`` with ROWS values written by sqlalchemy-utils' own
``StringEncryptedType(..., AesGcmEngine)``, runs ``fieldcrypt encrypt-column people.ssn --from
sqlalchemy-utils:aes-gcm`` as a subprocess, SIGKILLs it once a checkpoint exists and some
batches have committed, reruns it to the end, and checks every value reads back through the
model. The time (kill and rerun included) is compared, round by round, with adopting the same
values from plaintext (``encrypt-column`` without ``--from``), interleaved to share the load.

    python bench/bench_import.py [--rows 100000] [--rounds 3] [--databases postgresql,mariadb]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from _bench_db import BENCH_MARIADB_URL, BENCH_PG_URL, own_database
from _bench_stats import Figure, interleaved
from sqlalchemy_utils import StringEncryptedType
from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine

import fieldcrypt
from fieldcrypt.foreign import SqlalchemyUtils
from fieldcrypt.sqlalchemy import Encrypted
from fieldcrypt.stores.sql import SqlKeyStore

OLD_KEY = "sqlalchemy-utils benchmark key"
SCRIPT = str(Path(sys.executable).parent / "fieldcrypt")


def ssn(i: int) -> str:
    return f"{i % 1000:03d}-{i % 97:02d}-{i % 10000:04d}"


def people(column_type: object) -> sa.Table:
    return sa.Table(
        "people",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", column_type),  # type: ignore[arg-type]
    )


def fill(engine: sa.Engine, column_type: object, rows: int) -> None:
    """``people`` created afresh with ``rows`` SSNs written through ``column_type`` (also run by
    tests/cli/test_cli_import_kill.py, at a test's size)."""
    table = people(column_type)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS people"))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        for start in range(1, rows + 1, 5000):
            conn.execute(
                sa.insert(table),
                [{"id": i, "ssn": ssn(i)} for i in range(start, min(start + 5000, rows + 1))],
            )


def _run_cli(env: dict[str, str], extra: list[str], checkpoints: Path, *, kill: bool) -> None:
    command = [SCRIPT, "-q", "encrypt-column", "people.ssn", "--codec", "text", "--batch-size", "1000"]
    command += ["--checkpoint-dir", str(checkpoints), *extra]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)  # noqa: S603 - our own script
    if kill:
        while not any(checkpoints.glob("*.json")) and process.poll() is None:
            time.sleep(0.01)
        time.sleep(1.0)  # more batches commit
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        return
    if process.wait() != 0:
        raise SystemExit(f"encrypt-column failed with exit code {process.returncode}")


def _check(engine: sa.Engine, rows: int, keyring: fieldcrypt.Keyring) -> None:
    table = people(Encrypted(sa.String(11), keyring=keyring.name))
    with engine.connect() as conn:
        read = dict(conn.execute(sa.select(table.c.id, table.c.ssn)).all())
    if read != {i: ssn(i) for i in range(1, rows + 1)}:
        raise SystemExit("values did not read back after the move")


def _variant(
    engine: sa.Engine, env: dict[str, str], rows: int, keyring: fieldcrypt.Keyring, *, foreign: bool
) -> Callable[[], float]:
    def measure() -> float:
        fill(
            engine,
            StringEncryptedType(sa.String, OLD_KEY, AesGcmEngine, length=255) if foreign else sa.String(255),
            rows,
        )
        extra = ["--from", "sqlalchemy-utils:aes-gcm"] if foreign else []
        with tempfile.TemporaryDirectory() as scratch:
            checkpoints = Path(scratch)
            started = time.perf_counter()
            if foreign:
                _run_cli(env, extra, checkpoints, kill=True)
            _run_cli(env, extra, checkpoints, kill=False)
            seconds = time.perf_counter() - started
        _check(engine, rows, keyring)
        return seconds

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--databases", default="postgresql,mariadb")
    args = parser.parse_args()
    urls = {"postgresql": BENCH_PG_URL, "mariadb": BENCH_MARIADB_URL}
    key_file = Path(tempfile.mkdtemp()) / "master.key"
    fieldcrypt.LocalMasterKey.write_new(key_file)
    SqlalchemyUtils(OLD_KEY)  # the source the CLI builds from --from, checked here once
    for name in args.databases.split(","):
        engine = own_database(urls[name])
        stale = sa.MetaData()  # a key store left by an earlier run holds keys of another master key
        stale.reflect(engine)
        stale.drop_all(engine)
        store = SqlKeyStore(engine)
        store.create_table()
        keyring = fieldcrypt.register(
            fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), store), replace=True
        )
        env = {
            **os.environ,
            "FIELDCRYPT_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
            "FIELDCRYPT_FROM_KEY": OLD_KEY,
        }
        samples = interleaved(
            {
                "sqlalchemy-utils, kill -9, resume": _variant(engine, env, args.rows, keyring, foreign=True),
                "plaintext adoption": _variant(engine, env, args.rows, keyring, foreign=False),
            },
            args.rounds,
        )
        imported, plain = samples["sqlalchemy-utils, kill -9, resume"], samples["plaintext adoption"]
        print(f"{name}: {args.rows} rows, {args.rounds} rounds (median [low-high])")
        print(f"  import from sqlalchemy-utils with kill -9 + resume: {Figure.of(imported).show()} s")
        print(f"  plaintext adoption, one run:                       {Figure.of(plain).show()} s")
        print(
            f"  ratio import / plaintext:                          {Figure.of([a / b for a, b in zip(imported, plain, strict=True)]).show()}"
        )
        print(
            f"  rows per second (import):                          {Figure.of([args.rows / s for s in imported]).show('.0f')}"
        )
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS people"))
        engine.dispose()


if __name__ == "__main__":
    main()
