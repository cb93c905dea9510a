"""Benchmark of rotation (`reencrypt`): rows/s wall, client CPU per row, database CPU per row, peak RSS.

    .venv/bin/python bench/bench_rotation.py [--db postgresql|mariadb|dynamodb] [--sizes 100000,1000000]
        [--runs 3] [--plain] [--before SRC] [--rewrap-sizes 10000,200000]

Every run is a fresh subprocess (so peak RSS is that run's own): it fills a table with values
encrypted under one data key, rotates, and times `reencrypt` over the whole table (batches of
5,000 rows; DynamoDB: pages of 100 items, one conditional UpdateItem each). Per run it reports:
- rows/s of wall clock (what an operator sees; on a shared machine, mostly waiting);
- client CPU µs per row (`time.process_time` of the whole process over the run: the cryptography,
  fieldcrypt, SQLAlchemy and the driver) and rows per client-CPU-second (what one core could do
  if the database kept up);
- database CPU µs per row: PostgreSQL, the CPU of this run's own backend processes (from /proc);
  MariaDB, the whole mysqld process (other engineers' queries included: an upper bound);
  DynamoDB, the moto server process (a stand-in, not DynamoDB's cost);
- peak RSS during the run (sampled every 20 ms) and the process's maximum RSS
  (`resource.getrusage`, filling included), in MB: flat from 100k to 1M rows means bounded batches.
With --plain, the same engine rewriting the same column without cryptography (Python reverses the
bytes: same read, same compare-and-set write) runs after it, as the floor of the write itself.
With --before SRC (a checkout's `src`), each round also runs that code, interleaved, for a before
and after on the same load. Figures are the median [lowest-highest] over --runs rounds.
Databases: $FIELDCRYPT_BENCH_PG_URL / $FIELDCRYPT_BENCH_MARIADB_URL (default: fieldcrypt_bench on
127.0.0.1, created when missing; its tables users and fieldcrypt_keys are dropped and recreated);
DynamoDB: a moto server started on 127.0.0.1 for each run. `--rewrap-sizes` (PostgreSQL) times
`rewrap_keys` (KMS -> KMS through moto, ReEncrypt).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from _bench_db import BENCH_MARIADB_URL, BENCH_PG_URL, own_database
from _bench_stats import Figure
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import fieldcrypt
from fieldcrypt.rotation import ColumnSpec, engine
from fieldcrypt.rotation.actions import ACTIONS, Action
from fieldcrypt.stores.sql import SqlKeyStore

URLS = {
    "postgresql": os.environ.get("FIELDCRYPT_BENCH_PG_URL", BENCH_PG_URL),
    "mariadb": os.environ.get("FIELDCRYPT_BENCH_MARIADB_URL", BENCH_MARIADB_URL),
}
BATCH = 5000
FILL = 20_000  # rows encrypted and written per fill step (flat memory while filling too)


def reset(db: sa.Engine) -> None:
    blob = "BYTEA" if db.dialect.name == "postgresql" else "VARBINARY(255)"
    with db.begin() as conn:
        for table in ("users", "fieldcrypt_keys"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(sa.text(f"CREATE TABLE users (id INTEGER PRIMARY KEY, ssn {blob} NOT NULL)"))
    SqlKeyStore(db).create_table()


def ssn(i: int) -> str:
    return f"{i % 1000:03d}-{i % 100:02d}-{i % 10000:04d}"


def fill(db: sa.Engine, keyring: fieldcrypt.Keyring, rows: int) -> None:
    """Rows encrypted under the current key: COPY on PostgreSQL, multi-row INSERT on MariaDB."""
    place = fieldcrypt.Place("users", "ssn")
    users = sa.table("users", sa.column("id"), sa.column("ssn"))
    for start in range(1, rows + 1, FILL):
        chunk = [(i, keyring.encrypt(ssn(i), place)) for i in range(start, min(rows, start + FILL - 1) + 1)]
        if db.dialect.name != "postgresql":
            with db.begin() as conn:
                conn.execute(users.insert(), [{"id": i, "ssn": v} for i, v in chunk])
            continue
        raw = db.raw_connection()
        try:
            with raw.cursor().copy("COPY users (id, ssn) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in chunk:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
    with db.begin() as conn:
        conn.execute(sa.text("ANALYZE users" if db.dialect.name == "postgresql" else "ANALYZE TABLE users"))


class Rewrite(Action):
    """The plaintext floor: same read, same compare-and-set write, no cryptography."""

    name = "rewrite"

    def needs_work(self, stored: object, index: object, chosen: Any = None) -> bool:
        return stored is not None

    def apply(
        self, row: Any, stored: object, index: object = None, chosen: Any = None
    ) -> tuple[object, bytes | None]:
        data = bytes(stored)  # type: ignore[call-overload]
        return data[::-1], None


class Server:
    """CPU seconds used by the database's side of this run (see the module docstring)."""

    def __init__(self, db: sa.Engine | None, pid: int | None = None) -> None:
        self.pids: set[int] = set() if pid is None else {pid}
        self.whole = db is not None and db.dialect.name != "postgresql"
        if db is not None and db.dialect.name == "postgresql":
            sa.event.listen(db, "checkout", self._backend)
        elif db is not None:
            with db.connect() as conn:
                datadir = conn.execute(sa.text("SELECT @@pid_file")).scalar_one()
            self.pids = {int(Path(datadir).read_text().split()[0])}

    def _backend(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if "backend" not in record.info:  # once per pooled connection
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT pg_backend_pid()")
            record.info["backend"] = int(cursor.fetchone()[0])
            cursor.close()
        self.pids.add(record.info["backend"])

    def seconds(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue  # a backend that ended (its pool connection was closed)
            total += times.user + times.system
        return total


def measured(work: Any, server: Server) -> tuple[Any, dict[str, float]]:
    """Run ``work``; wall, client CPU, server CPU and peak RSS (sampled) over it."""
    process = psutil.Process()
    peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, process.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    server_before, cpu_before, started = server.seconds(), time.process_time(), time.perf_counter()
    thread.start()
    try:
        result = work()
    finally:
        done.set()
        thread.join()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    server_cpu = server.seconds() - server_before
    rss = max(peak, process.memory_info().rss)
    return result, {"wall": wall, "cpu": cpu, "server": server_cpu, "rss_peak": rss}


def child(db_name: str, rows: int, plain: bool) -> dict[str, Any]:
    if db_name == "dynamodb":
        return dynamodb_child(rows)
    db = own_database(URLS[db_name])
    reset(db)
    keyring = fieldcrypt.register(
        fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), SqlKeyStore(db))
    )
    fill(db, keyring, rows)
    keyring.rotate()
    spec = ColumnSpec("users", "ssn", keyring="pii", codec="text")
    server = Server(db)
    out: dict[str, Any] = {"rss_before": psutil.Process().memory_info().rss}
    report, out["reencrypt"] = measured(lambda: engine.run(db, spec, "reencrypt", batch_size=BATCH), server)
    assert (report.written, report.failed) == (rows, 0), report
    out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if plain:
        ACTIONS["rewrite"] = Rewrite
        again, out["plain"] = measured(lambda: engine.run(db, spec, "rewrite", batch_size=BATCH), server)
        assert again.written == rows, again
    return out


def dynamodb_child(items: int) -> dict[str, Any]:
    import boto3

    from fieldcrypt.dynamodb.reencrypt import Reencryptor
    from fieldcrypt.dynamodb.tables import EncryptedColumn
    from fieldcrypt.stores.memory import MemoryKeyStore

    moto = subprocess.Popen(  # moto's own server module, by this interpreter
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _moto_port(moto)
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
        ddb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}")
        ddb.create_table(
            TableName="patients",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), MemoryKeyStore())
        column = EncryptedColumn.open(ddb, "patients", "ssn")
        for start in range(0, items, 25):
            batch = []
            for i in range(start, min(items, start + 25)):
                item: dict[str, Any] = {"id": {"S": f"p-{i:07d}"}}
                item["ssn"] = {"B": keyring.encrypt(ssn(i), column.place(item))}
                batch.append({"PutRequest": {"Item": item}})
            ddb.batch_write_item(RequestItems={"patients": batch})
        keyring.rotate()
        out: dict[str, Any] = {"rss_before": psutil.Process().memory_info().rss}
        job = Reencryptor(ddb, "patients", "ssn", keyring=keyring)
        counts, out["reencrypt"] = measured(job.run, Server(None, moto.pid))
        assert (counts["reencrypted"], counts["failed"]) == (items, 0), counts
        out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return out
    finally:
        moto.terminate()
        moto.wait()


def _moto_port(moto: subprocess.Popen[str]) -> int:
    assert moto.stderr is not None
    for line in moto.stderr:  # werkzeug announces "Running on http://127.0.0.1:PORT"
        if "Running on http" in line:
            threading.Thread(target=moto.stderr.read, daemon=True).start()  # keep the pipe drained
            return int(line.rsplit(":", 1)[1].split("/")[0].strip())
    raise SystemExit("moto server did not start")


def aes_floor(rows: int) -> float:
    """CPU seconds of raw AESGCM decrypt + encrypt of ``rows`` values, no database."""
    aes = AESGCM(AESGCM.generate_key(256))
    nonce, aad = os.urandom(12), b"x" * 40
    sealed = aes.encrypt(nonce, b"123-45-6789", aad)
    started = time.process_time()
    for _ in range(rows):
        aes.encrypt(os.urandom(12), aes.decrypt(nonce, sealed, aad), aad)
    return time.process_time() - started


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
        import boto3

        kms = boto3.client("kms", region_name="us-east-1", endpoint_url=f"http://{host}:{port}")
        old, new = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
        db = own_database(URLS["postgresql"])
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


def run_child(db_name: str, rows: int, plain: bool, src: str | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(rows), "--db", db_name]  # this script
    command += ["--plain"] if plain else []
    env = dict(os.environ)
    if src is not None:  # the code under test before the change, ahead of the installed one
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    out = subprocess.run(command, capture_output=True, text=True, check=False, env=env)  # noqa: S603
    if out.returncode:
        raise SystemExit(f"run failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


COLUMNS = [
    "rows", "variant", "rows/s wall", "client CPU µs/row", "rows/client-CPU-s", "DB CPU µs/row",
    "RSS before MB", "RSS peak MB", "max RSS MB",
]  # fmt: skip


def table(rows: int, variant: str, runs: list[dict[str, Any]], phase: str) -> None:
    def fig(fn: Any, fmt: str) -> str:
        return Figure.of([fn(r) for r in runs]).show(fmt)

    cells = [
        f"{rows}",
        variant,
        fig(lambda r: rows / r[phase]["wall"], ",.0f"),
        fig(lambda r: r[phase]["cpu"] / rows * 1e6, ".1f"),
        fig(lambda r: rows / r[phase]["cpu"], ",.0f"),
        fig(lambda r: r[phase]["server"] / rows * 1e6, ".1f"),
        fig(lambda r: r["rss_before"] / 2**20, ".0f"),
        fig(lambda r: r[phase]["rss_peak"] / 2**20, ".0f"),
        fig(lambda r: r["maxrss"] / 2**20, ".0f"),
    ]
    print(" | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="postgresql", choices=["postgresql", "mariadb", "dynamodb"])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="also time the plaintext rewrite")
    parser.add_argument("--before", help="a checkout's src directory, run interleaved as 'before'")
    parser.add_argument("--rewrap-sizes", default="")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.db, args.child, args.plain)))
        return
    where = args.db if args.db == "dynamodb" else URLS[args.db].rsplit("@", 1)[-1]
    print(f"reencrypt on {where}, {args.runs} runs; median [lowest-highest]")
    print(" | ".join(COLUMNS))
    variants = {"after": None} if args.before is None else {"before": args.before, "after": None}
    for size in (int(s) for s in args.sizes.split(",")):
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, src in variants.items():  # interleaved: both see the same load
                results[name].append(run_child(args.db, size, args.plain, src))
        for name, runs in results.items():
            table(size, name if args.before else "fieldcrypt", runs, "reencrypt")
            if args.plain:
                table(size, f"{name} plaintext rewrite", runs, "plain")
        floor = aes_floor(size)
        print(f"{size} | AES-GCM floor (raw decrypt+encrypt, CPU) | {size / floor:,.0f} rows/CPU-s")
    for size in (int(s) for s in args.rewrap_sizes.split(",") if s):
        seconds, calls = rewrap_time(size)
        print(f"rewrap_keys {size} rows: {seconds:.3f} s, {calls} ReEncrypt calls")


if __name__ == "__main__":
    main()
