"""Total re-encryption throughput of 1 and of 2 concurrent `fieldcrypt reencrypt --segment auto`
processes on one PostgreSQL table (the AWS Batch array-job variables, as docs/scale.md shows).

    .venv/bin/python bench/bench_segments.py [--rows 40000] [--rounds 5]

Each round rotates the data key (so every row is on an old key again) and then runs the 1-process
and the 2-process layout, alternating which goes first (interleaved rounds, so drift in the
machine's load hits both alike). Per layout it prints the median and the spread (min-max) of:
- wall rows/s: rows divided by the time from starting the processes to the last one's exit
  (process start-up included, as a scheduler sees it);
- engine rows/s: rows divided by the longest engine time the processes report (start-up left out).
The plaintext and raw AES-GCM references of one process are in bench/bench_rotation.py.
Database: $FIELDCRYPT_BENCH_SEGMENTS_PG_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/fieldcrypt_bench_segments, created when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from _bench_db import own_database

import fieldcrypt
from fieldcrypt.stores.sql import SqlKeyStore

URL = os.environ.get(
    "FIELDCRYPT_BENCH_SEGMENTS_PG_URL",
    "postgresql+psycopg://postgres@127.0.0.1:5432/fieldcrypt_bench_segments",
)
SCRIPT = str(Path(sys.executable).parent / "fieldcrypt")
BATCH = "2000"


def prepare(db: sa.Engine, keyring: fieldcrypt.Keyring, rows: int) -> None:
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS users, fieldcrypt_keys"))
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, ssn BYTEA NOT NULL)"))
    SqlKeyStore(db).create_table()
    place = fieldcrypt.Place("users", "ssn")
    values = [
        {"i": i, "s": keyring.encrypt(f"{i % 1000:03d}-{i % 100:02d}-{i % 10000:04d}", place)}
        for i in range(1, rows + 1)
    ]
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id, ssn) VALUES (:i, :s)"), values)
        conn.execute(sa.text("ANALYZE users"))


def run_layout(processes: int, env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, longest engine seconds, rows written) of ``processes`` concurrent jobs."""
    started = time.monotonic()
    jobs = [
        subprocess.Popen(  # noqa: S603 - our own console script, fixed arguments
            [SCRIPT, "-q", "--json", "reencrypt", "users.ssn", "--segment", "auto", "--batch-size", BATCH],
            env={**env, "AWS_BATCH_JOB_ARRAY_INDEX": str(i), "AWS_BATCH_JOB_ARRAY_SIZE": str(processes)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    reports = []
    for job in jobs:
        out, _ = job.communicate()
        if job.returncode != 0:
            raise SystemExit(f"a job exited {job.returncode}")
        reports.append(json.loads(out))
    wall = time.monotonic() - started
    return wall, max(r["seconds"] for r in reports), sum(r["written"] for r in reports)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    db = own_database(URL)
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "master.key"
        fieldcrypt.LocalMasterKey.write_new(key_file)
        keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(key_file), SqlKeyStore(db))
        prepare(db, keyring, args.rows)
        env = {
            **os.environ,
            "FIELDCRYPT_DATABASE_URL": db.url.render_as_string(hide_password=False),
            "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
        }
        wall: dict[int, list[float]] = {1: [], 2: []}
        engine: dict[int, list[float]] = {1: [], 2: []}
        for n in range(args.rounds):
            for processes in (1, 2) if n % 2 == 0 else (2, 1):
                keyring.rotate()  # every row on an old key again
                seconds, longest, written = run_layout(processes, env)
                if written != args.rows:
                    raise SystemExit(f"{processes} processes wrote {written} of {args.rows} rows")
                wall[processes].append(args.rows / seconds)
                engine[processes].append(args.rows / longest)
    print(f"reencrypt of {args.rows} rows on PostgreSQL, {args.rounds} interleaved rounds, batch {BATCH}")
    print("processes | wall rows/s median (min-max) | engine rows/s median (min-max)")
    for processes in (1, 2):
        w, e = wall[processes], engine[processes]
        print(
            f"{processes} | {statistics.median(w):,.0f} ({min(w):,.0f}-{max(w):,.0f}) | "
            f"{statistics.median(e):,.0f} ({min(e):,.0f}-{max(e):,.0f})"
        )
    ratio = statistics.median(wall[2]) / statistics.median(wall[1])
    print(f"2 processes / 1 process, wall: {ratio:.2f}x")


if __name__ == "__main__":
    main()
