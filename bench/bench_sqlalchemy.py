"""Benchmark: encrypted SQLAlchemy columns against plaintext, the storage floor and sqlalchemy-utils.

    .venv/bin/python bench/bench_sqlalchemy.py [--rows 10000] [--rounds 5] [--db sqlite,postgresql,mariadb]
        [--variants floor,"floor again",fieldcrypt,floor+index,fieldcrypt+index]   # the targets only

A table ``(id, name, ssn)`` is written and read four ways (ORM ``add_all`` + commit, Core
executemany ``insert``, ORM ``select`` reading ``.ssn``, Core ``select``) with ``ssn`` as:

- ``plaintext``: ``String(11)``;
- ``floor``: the storage floor, a binary column of fieldcrypt's type (BYTEA / VARBINARY / BLOB)
  holding random bytes as long as the ciphertext (60 for an SSN), no encryption: what storing any
  ciphertext of that size costs, which is not fieldcrypt's cost;
- ``floor again``: the same floor in a second table, so each table shows the resolution of its
  figures on the machine as it is now (two runs of the same work differ by this much);
- ``fieldcrypt``: ``Encrypted(String(11), keyring="pii")``;
- ``plaintext+index`` / ``floor+index`` / ``fieldcrypt+index``: the same with an index, i.e. an
  indexed ``String(11)``, the floor plus an indexed binary twin of the blind-index column holding
  random 16-byte tokens, and ``Encrypted(..., searchable=True)`` (its ``ssn_bidx`` column);
- ``sqlalchemy-utils``: ``StringEncryptedType(String, key, AesGcmEngine)``.

Each round times every variant once per operation, in a shuffled order (bench/_bench_stats.py);
figures are the median over rounds with [lowest-highest]. Ratios to plaintext are wall clock
(what an application sees, database included; noisy on a shared machine). fieldcrypt's own cost
is this process's CPU time (``time.process_time``): the database does the same work for the
floor and for fieldcrypt (the same number of bytes), so the difference is fieldcrypt's. CPU time
swings far less than wall clock with other processes' load, but it still swings (shared caches, a
driver polling its socket longer while the server is slow): the "resolution" line says by how
much, and a figure closer to its target than that is not settled by one run. Differences are
taken round by round:
- "over the floor", µs per row: fieldcrypt minus the floor (whole rows; targets: inserts <= 2.5,
  selects <= 1.5);
- "blind index", µs per row: (fieldcrypt+index - fieldcrypt) - (floor+index - floor), the cost of
  keeping the index net of storing and indexing 16 more bytes (target <= 2.5 on both inserts).
Every guarantee stays on: verified searches, leak-free errors, row binding where declared.
Each round empties the table before an insert and reads what Core insert wrote; garbage
collection is off while a variant is timed (as timeit does). On SQLite the database runs inside
this process, so its CPU time is in every figure (alike for the floor and fieldcrypt).
Databases: SQLite in a temporary file, and PostgreSQL / MariaDB in a database of their own
(``fieldcrypt_bench``, created when missing; $FIELDCRYPT_BENCH_PG_URL / $FIELDCRYPT_BENCH_MARIADB_URL:
give two benchmarks run at once a database each, they drop and recreate the same tables).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from _bench_db import BENCH_MARIADB_URL, BENCH_PG_URL, own_database
from _bench_stats import Figure, interleaved, over, ratio
from sqlalchemy import Integer, LargeBinary, String, insert, select
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine, StringEncryptedType

import fieldcrypt
from fieldcrypt.sqlalchemy import Encrypted
from fieldcrypt.storage import sql as storage_sql

URLS = {
    "postgresql": os.environ.get("FIELDCRYPT_BENCH_PG_URL", BENCH_PG_URL),
    "mariadb": os.environ.get("FIELDCRYPT_BENCH_MARIADB_URL", BENCH_MARIADB_URL),
}
UTILS_KEY = "benchmark-only-secret"
SSN_TYPE = String(11)
CIPHERTEXT_BYTES = 49 + 11  # format v1 overhead + an 11-character SSN
TOKEN_BYTES = 16  # a keyring's default blind_index_bytes


class Base(DeclarativeBase):
    pass


def _floor_type() -> Any:
    # The column type fieldcrypt stores an SSN ciphertext in, without any processing of its own.
    size = storage_sql.stored_bytes(SSN_TYPE)
    return LargeBinary().with_variant(mysql.VARBINARY(size), "mysql", "mariadb")


def _model(name: str, ssn: Any, **extra: Any) -> type[Any]:
    columns = {"id": Mapped[int], "name": Mapped[str], "ssn": Mapped[Any]}
    columns.update({key: Mapped[Any] for key in extra})
    return type(
        name,
        (Base,),
        {
            "__tablename__": f"bench_{name.lower()}",
            "__annotations__": columns,
            "id": mapped_column(Integer, primary_key=True, autoincrement=False),
            "name": mapped_column(String(40)),
            "ssn": ssn,
            **extra,
        },
    )


VARIANTS: dict[str, type[Any]] = {
    "plaintext": _model("Plain", mapped_column(String(11))),
    "floor": _model("Floor", mapped_column(_floor_type())),
    "floor again": _model("FloorAgain", mapped_column(_floor_type())),
    "fieldcrypt": _model("Fieldcrypt", mapped_column(Encrypted(String(11), keyring="pii"))),
    "plaintext+index": _model("PlainIndexed", mapped_column(String(11), index=True)),
    "floor+index": _model(
        "FloorIndexed",
        mapped_column(_floor_type()),
        ssn_bidx=mapped_column(storage_sql.index_column_type(), index=True),
    ),
    "fieldcrypt+index": _model(
        "Indexed", mapped_column(Encrypted(String(11), keyring="pii", searchable=True))
    ),
    "sqlalchemy-utils": _model(
        "Utils", mapped_column(StringEncryptedType(String, UTILS_KEY, AesGcmEngine, length=255))
    ),
}
OPERATIONS = ("ORM insert", "Core insert", "ORM select", "Core select")
# What the per-row targets are measured with (and the floor run twice, for the resolution).
TARGET_VARIANTS = ("floor", "floor again", "fieldcrypt", "floor+index", "fieldcrypt+index")


def ssn(i: int) -> str:
    return f"{i % 900 + 100:03d}-{i % 90 + 10:02d}-{i % 9000 + 1000:04d}"


def rows_for(name: str, rows: int) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = [{"id": i, "name": f"user {i}", "ssn": ssn(i)} for i in range(rows)]
    if name.startswith("floor"):  # "floor", "floor again", "floor+index"
        for row in data:
            row["ssn"] = os.urandom(CIPHERTEXT_BYTES)
            if name == "floor+index":
                row["ssn_bidx"] = os.urandom(TOKEN_BYTES)
    return data


def timers(
    engine: sa.Engine, model: type[Any], data: list[dict[str, Any]], walls: dict[str, list[float]]
) -> dict[str, Callable[[], float]]:
    """One timer per operation (inserts start from an empty table): each returns this process's
    CPU seconds and appends the wall-clock seconds to ``walls[operation]``."""
    table = model.__table__

    def empty() -> None:
        with engine.begin() as conn:
            conn.execute(table.delete())

    def timed(
        op: str, work: Callable[[], object], before: Callable[[], object] | None = None
    ) -> Callable[[], float]:
        def run() -> float:
            if before is not None:
                before()
            gc.collect()
            gc.disable()  # as timeit does: a full collection would land on whichever variant ran then
            try:
                wall, cpu = time.perf_counter(), time.process_time()
                work()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            finally:
                gc.enable()
            walls[op].append(wall)
            return cpu

        return run

    def orm_insert() -> None:
        with Session(engine) as session:
            session.add_all(model(**row) for row in data)
            session.commit()

    def core_insert() -> None:
        with engine.begin() as conn:
            conn.execute(insert(table), data)

    def orm_select() -> None:
        with Session(engine) as session:
            for item in session.scalars(select(model)):
                item.ssn  # noqa: B018 - reading the attribute is what is measured

    def core_select() -> None:
        with engine.connect() as conn:
            for row in conn.execute(select(table)):
                row.ssn  # noqa: B018

    return {
        "ORM insert": timed("ORM insert", orm_insert, empty),
        "Core insert": timed("Core insert", core_insert, empty),
        "ORM select": timed("ORM select", orm_select),
        "Core select": timed("Core select", core_select),
    }


Samples = dict[str, dict[str, list[float]]]  # operation -> variant -> seconds, one per round


def run(url: str, rows: int, rounds: int, chosen: list[str]) -> tuple[Samples, Samples]:
    """(wall, CPU) samples by operation and variant; each operation's variants interleaved."""
    engine = own_database(url) if not url.startswith("sqlite") else sa.create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        walls: Samples = {name: {op: [] for op in OPERATIONS} for name in chosen}
        per_variant = {
            name: timers(engine, VARIANTS[name], rows_for(name, rows), walls[name]) for name in chosen
        }
        for t in per_variant.values():  # warm-up, not counted: statement caches, first connections
            for op in OPERATIONS:
                t[op]()
        for by_op in walls.values():
            for values in by_op.values():
                values.clear()
        cpu: Samples = {op: {name: [] for name in chosen} for op in OPERATIONS}
        for round_number in range(rounds):
            for op in OPERATIONS:  # inserts first: the selects read what Core insert wrote
                one = interleaved({name: t[op] for name, t in per_variant.items()}, 1, seed=round_number)
                for name, values in one.items():
                    cpu[op][name] += values
        wall: Samples = {op: {name: walls[name][op] for name in chosen} for op in OPERATIONS}
        return wall, cpu
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


def report(title: str, measured: tuple[Samples, Samples], rows: int) -> None:
    us_per_row = 1e6 / rows
    wall, cpu = measured
    chosen = list(wall[OPERATIONS[0]])
    print(f"\n{title}: wall-clock ratio to plaintext (µs per row), median [lowest-highest] over rounds")
    print(f"{'operation':12}" + "".join(f"{name:>22}" for name in chosen))
    for op in OPERATIONS:
        cells = []
        for name in chosen:
            base = "plaintext+index" if name.endswith("+index") else "plaintext"
            shown = f" ({Figure.of(wall[op][name]).median * us_per_row:.1f})"
            cells.append(f"{ratio(wall[op], name, base).median:.2f}x{shown}" if base in chosen else shown)
        print(f"{op:12}" + "".join(f"{c:>22}" for c in cells))
    print("  (+index variants are ratios to the indexed plaintext)")
    print(
        f"{title}: fieldcrypt's own cost, client CPU µs per row (time.process_time), median [lowest-highest]"
    )
    print(f"  {'figure':44} {'measured against':34} {'median [spread]':>24}  target")
    for op in OPERATIONS:
        for label, against, figure, target in per_row(cpu[op], op, us_per_row):
            met = "" if target is None else f"<= {target}  {'met' if figure.median <= target else 'NOT met'}"
            print(f"  {op + ', ' + label:44} {against:34} {figure.show():>24}  {met}")


def per_row(
    samples: dict[str, list[float]], op: str, us_per_row: float
) -> list[tuple[str, str, Figure, float | None]]:
    """The per-row figures of one operation: (what, measured against, figure, target or None).

    Differences are taken round by round, so both sides of one saw the same load. The server's
    time is not in them: the database stores the same bytes for the floor and for fieldcrypt.
    """
    found: list[tuple[str, str, Figure, float | None]] = []
    insert = "insert" in op
    if {"fieldcrypt", "floor"} <= samples.keys():
        target = 2.5 if insert else 1.5
        found.append(
            (
                "whole row",
                "floor (random bytes, same length)",
                over(samples, "fieldcrypt", "floor", us_per_row),
                target,
            )
        )
    if {"fieldcrypt+index", "floor+index"} <= samples.keys():
        found.append(
            (
                "searchable row",
                "floor+index (16 more bytes, indexed)",
                over(samples, "fieldcrypt+index", "floor+index", us_per_row),
                None,
            )
        )
        if insert and {"fieldcrypt", "floor"} <= samples.keys():
            net = Figure.of(
                [
                    (fi - f - (bi - b)) * us_per_row
                    for fi, f, bi, b in zip(
                        samples["fieldcrypt+index"],
                        samples["fieldcrypt"],
                        samples["floor+index"],
                        samples["floor"],
                        strict=True,
                    )
                ]
            )
            found.append(("blind index", "(+index - plain) of fieldcrypt - floor", net, 2.5))
    if {"floor again", "floor"} <= samples.keys():
        # The same work twice: how far two runs of one variant differ on this machine now, the
        # resolution of every figure above.
        found.append(
            (
                "resolution",
                "floor again - floor (same work)",
                over(samples, "floor again", "floor", us_per_row),
                None,
            )
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", default="sqlite,postgresql,mariadb")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated; --variants " + ",".join(TARGET_VARIANTS) + " times only what the targets need",
    )
    args = parser.parse_args()
    chosen = args.variants.split(",")
    unknown = set(chosen) - VARIANTS.keys()
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    fieldcrypt.register(keyring)
    keyring.warm_up()
    keyring.blind_index(b"warm", fieldcrypt.Place("bench", "warm"))
    print(f"fieldcrypt {fieldcrypt.__version__} SQLAlchemy benchmark: {args.rows} rows, {args.rounds} rounds")
    for db in args.db.split(","):
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as scratch:
                report(
                    "SQLite (file)",
                    run(f"sqlite:///{scratch}/bench.db", args.rows, args.rounds, chosen),
                    args.rows,
                )
        else:
            url = URLS[db]
            where = sa.make_url(url).render_as_string()
            report(f"{db} ({where})", run(url, args.rows, args.rounds, chosen), args.rows)


if __name__ == "__main__":
    main()
