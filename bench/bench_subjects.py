"""Benchmark of per-subject keys: key-store size, KMS calls, memory, cold vs warm reads, up to 10**6 subjects.

    .venv/bin/python bench/bench_subjects.py [--subjects 1000000] [--memory-subjects 0]
        [--cache 10000] [--batch 1000] [--sample 2000] [--rounds 7]

For ``--subjects`` subjects in a PostgreSQL key store ($FIELDCRYPT_BENCH_SUBJECTS_PG_URL, default
database fieldcrypt_bench_subjects, created when missing; its table fieldcrypt_keys is dropped and
recreated) and ``--memory-subjects`` in the in-memory key store, it makes every subject's key
(``Keyring.prepare_subject_keys``, ``--batch`` subjects per key-store transaction; ``--batch 0``
makes them one at a time, as the first write of each subject does) and encrypts one value per
subject, keeping the values of ``--sample`` random subjects only, so the process holds what a
keyring holds. It prints:
- at 10,000 and every 100,000 subjects made: elapsed wall and CPU, the subject cache's entries,
  RSS and peak RSS (``getrusage`` maxrss), Python's allocated blocks, and on PostgreSQL the
  key-store rows and ``pg_total_relation_size``; the making stops after ``--minutes`` of wall time
  (a shared machine), at the checkpoint reached;
- the memory of the subject cache (tracemalloc, filled by a new keyring reading the sample);
- KMS calls (a counting master key) to make them all, and for a new keyring (a new process) to
  read the sample;
- one read of a value: warm (subject cached) and cold (evicted first: one key-store point read and
  a local AES unwrap), CPU µs (``thread_time``) and wall µs, median [low-high] over interleaved rounds.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import random
import resource
import sys
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
CHECKPOINTS = (10_000, 100_000, 1_000_000)
Sized = Callable[[], tuple[int, int]]  # key-store rows and bytes (0, 0 where not known)


def make(
    writer: fieldcrypt.Keyring, args: argparse.Namespace, subjects: int, sample: set[int], sized: Sized
) -> dict[int, bytes]:
    """Every subject's key and one value each, until ``--minutes`` of wall time have passed; prints
    a line per checkpoint; returns the sample's values."""
    kept: dict[int, bytes] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    stop_at = wall + args.minutes * 60
    marks = sorted(
        {c for c in CHECKPOINTS if c < subjects} | set(range(100_000, subjects, 100_000)) | {subjects}
    )
    print(
        "| subjects made | wall s | CPU s | cache entries | RSS MiB | peak RSS MiB | Python blocks | store rows | store MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    process = psutil.Process()
    done = 0
    for mark in marks:
        while done < mark:
            chunk = range(done, min(mark, done + max(args.batch, 1)))
            if args.batch:
                writer.prepare_subject_keys(chunk, batch=args.batch)
            for n in chunk:  # the keys are cached now: values make no key-store call
                value = writer.encrypt_for_subject(n, f"{n:09d}", PLACE)
                if n in sample:
                    kept[n] = value
            done = chunk.stop
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        rows, size = sized()
        print(
            f"| {mark:,} | {time.perf_counter() - wall:.0f} | {time.process_time() - cpu:.0f} "
            f"| {len(writer.subject_cache):,} | {process.memory_info().rss / 2**20:.0f} | {peak:.0f} "
            f"| {sys.getallocatedblocks():,} | {rows:,} | {size / 2**20:.0f} |",
            flush=True,
        )
        if time.perf_counter() > stop_at and mark < subjects:
            print(f"| stopped: --minutes {args.minutes} of wall time passed | | | | | | | | |")
            break
    return kept


def cache_bytes(master: CountingMasterKey, store: KeyStore, values: dict[int, bytes], cache: int) -> None:
    """The Python memory a subject cache holds (tracemalloc), filled by a new keyring's reads."""
    sizer = fieldcrypt.Keyring("pii", master, store, subject_cache_entries=cache)
    first, *rest = values
    sizer.decrypt_for_subject(first, values[first], PLACE)  # the anchor and wrapping key, outside the count
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in rest:
        sizer.decrypt_for_subject(n, values[n], PLACE)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    each = held / max(len(rest), 1)
    print(
        f"subject cache memory: {held / 2**20:.2f} MiB for {len(rest):,} subjects, ~{each:.0f} bytes each "
        f"(tracemalloc); a full cache of {cache:,}: ~{each * cache / 2**20:.1f} MiB"
    )


def run(label: str, store: KeyStore, args: argparse.Namespace, sized: Sized, subjects: int) -> None:
    master = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    writer = fieldcrypt.Keyring("pii", master, store, subject_cache_entries=args.cache)
    picker = random.Random(1)
    sample = set(picker.sample(range(subjects), min(args.sample, subjects)))
    how = f"batches of {args.batch:,}" if args.batch else "one at a time"
    print(f"\n== {label}: {subjects:,} subjects, keys made in {how} (subject cache {args.cache:,})\n")
    values = make(writer, args, subjects, sample, sized)
    print(f"\nKMS calls to make them all: {master.calls['wrap']} wraps, {master.calls['unwrap']} unwraps")

    cache_bytes(master, store, values, args.cache)
    master.calls.clear()
    reader = fieldcrypt.Keyring("pii", master, store, subject_cache_entries=args.cache)
    wall, cpu = time.perf_counter(), time.process_time()
    for n, value in values.items():
        reader.decrypt_for_subject(n, value, PLACE)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"a new keyring reading one value of each of {len(values):,} random subjects: {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU; KMS calls: {master.calls['wrap']} wraps, {master.calls['unwrap']} unwraps"
    )

    hot = list(itertools.islice(values, 100))
    for n in hot:
        reader.decrypt_for_subject(n, values[n], PLACE)
    rare = random.Random(2)
    reads = 200

    def warm(clock: Callable[[], float]) -> Callable[[], float]:
        def timed() -> float:
            start = clock()
            for i in range(reads):
                n = hot[i % len(hot)]
                reader.decrypt_for_subject(n, values[n], PLACE)
            return (clock() - start) / reads * 1e6

        return timed

    def cold(clock: Callable[[], float]) -> Callable[[], float]:
        """Reads of rare subjects, each evicted first; µs per read on ``clock``."""
        pool = list(values)

        def timed() -> float:
            picks = [rare.choice(pool) for _ in range(reads)]
            for n in picks:
                reader.subject_cache.evict(str(n))
            start = clock()
            for n in picks:
                reader.decrypt_for_subject(n, values[n], PLACE)
            return (clock() - start) / reads * 1e6

        return timed

    gc.collect()
    samples = interleaved(
        {
            "warm": warm(time.thread_time),
            "warm_wall": warm(time.perf_counter),
            "cold": cold(time.thread_time),
            "cold_wall": cold(time.perf_counter),
        },
        args.rounds,
    )
    print(f"\n| read of one value ({args.rounds} interleaved rounds of {reads}) | CPU µs | wall µs |")
    print("|---|---|---|")
    for name, what in (
        ("warm", "warm (subject cached)"),
        ("cold", "cold (rare subject: one key-store read)"),
    ):
        print(f"| {what} | {Figure.of(samples[name]).show()} | {Figure.of(samples[name + '_wall']).show()} |")
    print(
        f"\nKMS calls of the reader, all reads included: {master.calls['wrap']} wraps, "
        f"{master.calls['unwrap']} unwraps; its cache: {len(reader.subject_cache):,} entries"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--memory-subjects", type=int, default=0)
    parser.add_argument("--cache", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000, help="subjects per transaction; 0: one at a time")
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--minutes", type=float, default=18, help="stop making subjects after this long")
    args = parser.parse_args()

    if args.subjects:
        engine = own_database(URL)
        table = SqlKeyStore(engine).table
        table.drop(engine, checkfirst=True)
        sql_store = SqlKeyStore(engine)
        sql_store.create_table()

        def pg_size() -> tuple[int, int]:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                size = conn.execute(sa.text("select pg_total_relation_size('fieldcrypt_keys')")).scalar()
                return int(rows or 0), int(size or 0)

        run("PostgreSQL key store", sql_store, args, pg_size, args.subjects)
    if args.memory_subjects:
        run("in-memory key store", fieldcrypt.MemoryKeyStore(), args, lambda: (0, 0), args.memory_subjects)


if __name__ == "__main__":
    main()
