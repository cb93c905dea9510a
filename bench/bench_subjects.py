"""Benchmark of per-subject keys: key-store size, KMS calls, cache memory, cold vs warm reads.

    .venv/bin/python bench/bench_subjects.py [--subjects 10000] [--memory-subjects 1000000]
        [--cache 10000] [--rounds 7]

For ``--subjects`` subjects in a PostgreSQL key store ($FIELDCRYPT_BENCH_SUBJECTS_PG_URL, default
database fieldcrypt_bench_subjects, created when missing; its table fieldcrypt_keys is dropped and
recreated) and ``--memory-subjects`` in the in-memory key store, it writes one value per subject
and prints:
- key-store rows (the keyring's own and its subjects') and, on PostgreSQL, the table's size;
- KMS calls (wraps, unwraps: a counting master key) to make every subject's key, and for a new
  process to read a value of every subject;
- the subject-key cache: entries and the bytes it holds (tracemalloc), against its bound;
- one read of a value: warm (its subject's key cached) and cold (evicted first: a key-store
  point read and a local AES unwrap), CPU µs per read, median [low-high] over interleaved rounds.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
import tracemalloc
from collections.abc import Callable

import psutil
import sqlalchemy as sa
from _bench_db import own_database
from _bench_stats import Figure, interleaved

import fieldcrypt
from fieldcrypt.stores.base import KeyStore
from fieldcrypt.stores.sql import SqlKeyStore
from fieldcrypt.testing import CountingMasterKey

URL = os.environ.get(
    "FIELDCRYPT_BENCH_SUBJECTS_PG_URL",
    "postgresql+psycopg://postgres@127.0.0.1:5432/fieldcrypt_bench_subjects",
)
PLACE = fieldcrypt.Place("users", "ssn")


def run(
    label: str, store: KeyStore, subjects: int, cache: int, rounds: int, table_bytes: Callable[[], int]
) -> None:
    master = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    writer = fieldcrypt.Keyring("pii", master, store, subject_cache_entries=cache)
    started = time.perf_counter()
    values = [writer.encrypt_for_subject(n, f"{n:09d}", PLACE) for n in range(subjects)]
    made = time.perf_counter() - started
    print(f"\n== {label}: {subjects:,} subjects (subject cache {cache:,})")
    print(
        f"making every subject's key + one value: {made:.1f} s ({made / subjects * 1e6:.0f} µs per subject)"
    )
    print(f"KMS calls to make them: {master.calls['wrap']} wraps, {master.calls['unwrap']} unwraps")
    own = len(store.list("pii"))
    rows = len(store.list("pii#subjects"))
    print(f"key-store rows: {own} of the keyring (anchor, subject-wrapping key), {rows:,} subject rows")
    size = table_bytes()
    if size:
        print(
            f"key-store table: {size / 2**20:.1f} MiB ({size / (own + rows):.0f} bytes per row, indexes included)"
        )
    print(f"writer's subject cache: {len(writer.subject_cache):,} entries (bound {cache:,})")

    master.calls.clear()
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    reader = fieldcrypt.Keyring("pii", master, store, subject_cache_entries=cache)
    started = time.perf_counter()
    for n, value in enumerate(values):
        reader.decrypt_for_subject(n, value, PLACE)
    read_all = time.perf_counter() - started
    gc.collect()
    grown = process.memory_info().rss - rss_before
    print(
        f"a new process reading one value of every subject: {read_all:.1f} s, KMS calls: "
        f"{master.calls['wrap']} wraps, {master.calls['unwrap']} unwraps"
    )
    print(
        f"its subject cache after the pass: {len(reader.subject_cache):,} entries (bound {cache:,}); "
        f"RSS grew {grown / 2**20:.1f} MiB during the pass"
    )
    # The bytes one cached subject holds: a fresh reader filling its cache, under tracemalloc.
    sizer = fieldcrypt.Keyring("pii", master, store, subject_cache_entries=cache)
    sizer.decrypt_for_subject(0, values[0], PLACE)  # the anchor and wrapping key, outside the count
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    filled = min(cache, subjects) - 1
    for n in range(1, filled + 1):
        sizer.decrypt_for_subject(n, values[n], PLACE)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(
        f"a full subject cache: {held / 2**20:.2f} MiB for {filled:,} subjects "
        f"(~{held / max(filled, 1):.0f} bytes each; Python objects, tracemalloc)"
    )

    hot = list(range(min(100, subjects)))
    for n in hot:
        reader.decrypt_for_subject(n, values[n], PLACE)
    rare = random.Random(1)
    reads = 200

    def warm() -> float:
        start = time.thread_time()
        for i in range(reads):
            n = hot[i % len(hot)]
            reader.decrypt_for_subject(n, values[n], PLACE)
        return (time.thread_time() - start) / reads * 1e6

    def cold(clock: Callable[[], float]) -> Callable[[], float]:
        """Reads of rare subjects, each evicted first; µs per read on ``clock``."""

        def run() -> float:
            picks = [rare.randrange(subjects) for _ in range(reads)]
            for n in picks:
                reader.subject_cache.evict(str(n))
            start = clock()
            for n in picks:
                reader.decrypt_for_subject(n, values[n], PLACE)
            return (clock() - start) / reads * 1e6

        return run

    samples = interleaved(
        {"warm": warm, "cold": cold(time.thread_time), "cold_wall": cold(time.perf_counter)}, rounds
    )
    print(f"read of one value, warm (subject cached): {Figure.of(samples['warm']).show()} µs CPU")
    print(f"read of one value, cold (rare subject, not cached): {Figure.of(samples['cold']).show()} µs CPU")
    print(
        f"  the same cold read in wall time (the key-store round trip included): {Figure.of(samples['cold_wall']).show()} µs"
    )
    print(
        f"KMS calls of the readers since the writer finished: {master.calls['wrap']} wraps, {master.calls['unwrap']} unwraps"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--memory-subjects", type=int, default=1_000_000)
    parser.add_argument("--cache", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    if args.subjects:
        engine = own_database(URL)
        table = SqlKeyStore(engine).table
        table.drop(engine, checkfirst=True)
        sql_store = SqlKeyStore(engine)
        sql_store.create_table()

        def pg_size() -> int:
            with engine.connect() as conn:
                query = sa.text("select pg_total_relation_size('fieldcrypt_keys')")
                return int(conn.execute(query).scalar() or 0)

        run("PostgreSQL key store", sql_store, args.subjects, args.cache, args.rounds, pg_size)
    if args.memory_subjects:
        run(
            "in-memory key store",
            fieldcrypt.MemoryKeyStore(),
            args.memory_subjects,
            args.cache,
            args.rounds,
            lambda: 0,
        )


if __name__ == "__main__":
    main()
