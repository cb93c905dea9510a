"""Benchmark of rotation on PostgreSQL: `reencrypt` throughput and peak memory, and `rewrap_keys`.

    .venv/bin/python bench/bench_rotation.py [--sizes 100000,400000] [--rewrap-sizes 10000,200000]

Each reencrypt size runs in its own subprocess (so peak RSS is that run's own). Per size it
prints rows/s of:
- fieldcrypt reencrypt (decrypt + encrypt + compare-and-set write, batches of 5,000);
- plaintext: the same engine rewriting the same column with same-size values, no cryptography;
- AES-GCM floor: raw `cryptography` AESGCM decrypt + encrypt of the same values, no database;
with the ratios to both, and RSS before and at peak during the run. Rewrap (KMS -> KMS through
moto's server on 127.0.0.1, ReEncrypt) is timed over 10,000 and 200,000 rows.
Database: $FIELDCRYPT_BENCH_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/fieldcrypt_bench,
created when missing); the tables users and fieldcrypt_keys there are dropped and recreated.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

import psutil
import sqlalchemy as sa
from _bench_db import BENCH_PG_URL, own_database
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import fieldcrypt
from fieldcrypt.rotation import ColumnSpec, engine
from fieldcrypt.rotation.actions import ACTIONS, Action
from fieldcrypt.stores.sql import SqlKeyStore

URL = os.environ.get("FIELDCRYPT_BENCH_PG_URL", BENCH_PG_URL)
BATCH = 5000


def reset(db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS users, fieldcrypt_keys"))
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, ssn BYTEA NOT NULL)"))
    SqlKeyStore(db).create_table()


def fill(db: sa.Engine, keyring: fieldcrypt.Keyring, rows: int) -> None:
    """Pre-encrypted rows written with COPY, 50,000 at a time (flat memory while filling too)."""
    place = fieldcrypt.Place("users", "ssn")
    raw = db.raw_connection()
    try:
        cursor = raw.cursor()
        for start in range(1, rows + 1, 50_000):
            with cursor.copy("COPY users (id, ssn) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for i in range(start, min(rows, start + 49_999) + 1):
                    copy.write_row(
                        (i, keyring.encrypt(f"{i % 1000:03d}-{i % 100:02d}-{i % 10000:04d}", place))
                    )
        raw.commit()
        cursor.execute("ANALYZE users")
        raw.commit()
    finally:
        raw.close()


class Rewrite(Action):
    """The plaintext baseline: same read, same compare-and-set write, no cryptography."""

    name = "rewrite"

    def needs_work(self, stored: object, index: object) -> bool:
        return stored is not None

    def apply(self, row: Any, stored: object, index: object = None) -> tuple[object, bytes | None]:
        data = bytes(stored)  # type: ignore[call-overload]
        return data[::-1], None


def peak_rss_during(work: Any) -> tuple[Any, int]:
    process = psutil.Process()
    peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, process.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = work()
    finally:
        done.set()
        thread.join()
    return result, max(peak, process.memory_info().rss)


def child(rows: int) -> None:
    db = own_database(URL)
    reset(db)
    keyring = fieldcrypt.register(
        fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), SqlKeyStore(db))
    )
    fill(db, keyring, rows)
    keyring.rotate()
    spec = ColumnSpec("users", "ssn", keyring="pii", codec="text")
    rss_before = psutil.Process().memory_info().rss
    report, rss_peak = peak_rss_during(lambda: engine.run(db, spec, "reencrypt", batch_size=BATCH))
    assert report.written == rows, report
    assert report.failed == 0, report
    ACTIONS["rewrite"] = Rewrite
    plain = engine.run(db, spec, "rewrite", batch_size=BATCH)
    assert plain.written == rows, plain
    # AES-GCM floor: decrypt and encrypt the same number of values with raw AESGCM, no database.
    aes = AESGCM(AESGCM.generate_key(256))
    nonce, aad = os.urandom(12), b"x" * 40
    sealed = aes.encrypt(nonce, b"123-45-6789", aad)
    started = time.perf_counter()
    for _ in range(rows):
        aes.encrypt(os.urandom(12), aes.decrypt(nonce, sealed, aad), aad)
    floor = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": rows,
                "reencrypt": report.seconds,
                "plain": plain.seconds,
                "floor": floor,
                "rss_before": rss_before,
                "rss_peak": rss_peak,
            }
        )
    )


def rewrap_time(rows: int) -> tuple[float, int]:
    from moto.server import ThreadedMotoServer

    from fieldcrypt.keys.kms import KmsMasterKey
    from fieldcrypt.rotation import admin

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log is noise here
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        endpoint = f"http://{host}:{port}"
        import boto3

        kms = boto3.client("kms", region_name="us-east-1", endpoint_url=endpoint)
        old, new = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
        db = own_database(URL)
        reset(db)
        keyring = fieldcrypt.Keyring("pii", KmsMasterKey(old, client=kms), SqlKeyStore(db))
        for _ in range(3):
            keyring.rotate()
        fill(db, keyring, rows)
        started = time.perf_counter()
        report = admin.rewrap(keyring, KmsMasterKey(new, client=kms), remove_old=True)
        return time.perf_counter() - started, report.reencrypt_calls
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,400000")
    parser.add_argument("--rewrap-sizes", default="10000,200000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"reencrypt on PostgreSQL ({URL.rsplit('@', 1)[-1]}), batches of {BATCH}")
    columns = ["rows", "reencrypt rows/s", "plaintext rows/s", "x plain", "AES-GCM floor rows/s", "x floor"]
    columns += ["RSS before MB", "RSS peak MB"]
    print(" ".join(f"{c:>{max(8, len(c))}}" for c in columns))
    for size in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--child", str(size)]  # this script, by its own path
        out = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
        r = json.loads(out.stdout.strip().splitlines()[-1])
        cells = [f"{size}", f"{size / r['reencrypt']:,.0f}", f"{size / r['plain']:,.0f}"]
        cells += [
            f"{r['reencrypt'] / r['plain']:.2f}",
            f"{size / r['floor']:,.0f}",
            f"{r['reencrypt'] / r['floor']:.1f}",
        ]
        cells += [f"{r['rss_before'] / 2**20:.1f}", f"{r['rss_peak'] / 2**20:.1f}"]
        print(" ".join(f"{v:>{max(8, len(c))}}" for v, c in zip(cells, columns, strict=True)))
    print("\nrewrap_keys (KMS -> KMS, ReEncrypt, 3 data keys; moto server on loopback)")
    print(f"{'rows':>8} {'seconds':>8} {'ReEncrypt calls':>16}")
    for size in (int(s) for s in args.rewrap_sizes.split(",")):
        seconds, calls = rewrap_time(size)
        print(f"{size:>8} {seconds:>8.3f} {calls:>16}")


if __name__ == "__main__":
    main()
