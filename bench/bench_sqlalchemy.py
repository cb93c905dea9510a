"""Benchmark: encrypted SQLAlchemy columns against plaintext and sqlalchemy-utils, on SQLite and PostgreSQL.

Run: python bench/bench_sqlalchemy.py [--rows 50000] [--repeats 3] [--pg-url URL] [--skip-pg]

For each database, a table (id, name, ssn) is written and read four ways (ORM add_all + commit,
Core executemany insert, ORM select reading ``.ssn``, Core select) with ``ssn`` as:
plaintext ``String(11)``; ``fieldcrypt Encrypted(String(11), keyring="pii")``; the same with a blind index
(``searchable=True``); and sqlalchemy-utils ``StringEncryptedType(String, key, AesGcmEngine)``.
Seconds are best of ``--repeats``; ratios are to plaintext. The raw AES-GCM floor is the time to
seal (or open) the same number of SSNs with ``AESGCM`` directly: the least any client-side
encryption can add, printed beside the fieldcrypt overhead.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from _bench_db import BENCH_PG_URL, own_database
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Integer, String, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine, StringEncryptedType

import fieldcrypt
from fieldcrypt.sqlalchemy import Encrypted

PG_URL = os.environ.get("FIELDCRYPT_BENCH_PG_URL", BENCH_PG_URL)
UTILS_KEY = "benchmark-only-secret"


class Base(DeclarativeBase):
    pass


def _model(name: str, ssn_type: Any) -> type[Any]:
    return type(
        name,
        (Base,),
        {
            "__tablename__": f"bench_{name.lower()}",
            "__annotations__": {"id": Mapped[int], "name": Mapped[str], "ssn": Mapped[str]},
            "id": mapped_column(Integer, primary_key=True, autoincrement=False),
            "name": mapped_column(String(40)),
            "ssn": mapped_column(ssn_type),
        },
    )


VARIANTS: dict[str, type[Any]] = {
    "plaintext": _model("Plain", String(11)),
    "fieldcrypt": _model("Fieldcrypt", Encrypted(String(11), keyring="pii")),
    "fieldcrypt+index": _model("Indexed", Encrypted(String(11), keyring="pii", searchable=True)),
    "sqlalchemy-utils": _model("Utils", StringEncryptedType(String, UTILS_KEY, AesGcmEngine)),
}
OPERATIONS = ["ORM insert", "Core insert", "ORM select", "Core select"]


def ssn(i: int) -> str:
    return f"{i % 900 + 100:03d}-{i % 90 + 10:02d}-{i % 9000 + 1000:04d}"


def best(fn: Callable[[], object], prepare: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        prepare()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(engine: sa.Engine, model: type[Any], rows: int, repeats: int) -> dict[str, float]:
    table = model.__table__
    data = [{"id": i, "name": f"user {i}", "ssn": ssn(i)} for i in range(rows)]

    def empty() -> None:
        with engine.begin() as conn:
            conn.execute(table.delete())

    def orm_insert() -> None:
        with Session(engine) as session:
            session.add_all(model(**row) for row in data)
            session.commit()

    def core_insert() -> None:
        with engine.begin() as conn:
            conn.execute(insert(table), data)

    def orm_select() -> None:
        with Session(engine) as session:
            for user in session.scalars(select(model)):
                user.ssn  # noqa: B018 - reading the attribute is what is measured

    def core_select() -> None:
        with engine.connect() as conn:
            for row in conn.execute(select(table)):
                row.ssn  # noqa: B018

    result = {
        "ORM insert": best(orm_insert, empty, repeats),
        "Core insert": best(core_insert, empty, repeats),
    }
    result["ORM select"] = best(orm_select, lambda: None, repeats)
    result["Core select"] = best(core_select, lambda: None, repeats)
    empty()
    return result


def aes_floor(rows: int, repeats: int) -> tuple[float, float]:
    """Seconds to seal and to open ``rows`` SSNs with AESGCM alone (same AAD length as fieldcrypt)."""
    aead, aad = AESGCM(os.urandom(32)), os.urandom(21 + len(fieldcrypt.Place("users", "ssn").encode()))
    values = [ssn(i).encode() for i in range(rows)]
    sealed: list[tuple[bytes, bytes]] = []

    def seal() -> None:
        sealed.clear()
        for value in values:
            nonce = os.urandom(12)
            sealed.append((nonce, aead.encrypt(nonce, value, aad)))

    def open_all() -> None:
        for nonce, blob in sealed:
            aead.decrypt(nonce, blob, aad)

    return best(seal, lambda: None, repeats), best(open_all, lambda: None, repeats)


def report(title: str, results: dict[str, dict[str, float]], floor: tuple[float, float]) -> None:
    print(f"\n{title}")
    names = list(results)
    print(f"{'operation':12}" + "".join(f"{n:>26}" for n in names))
    for op in OPERATIONS:
        plain = results["plaintext"][op]
        cells = [f"{results[n][op]:8.3f}s {results[n][op] / plain:6.2f}x" for n in names]
        print(f"{op:12}" + "".join(f"{c:>26}" for c in cells))
    seal, open_ = floor
    print(f"raw AES-GCM floor: seal {seal:.3f}s, open {open_:.3f}s for the same rows")
    for op in OPERATIONS:
        extra = results["fieldcrypt"][op] - results["plaintext"][op]
        bound = seal if "insert" in op else open_
        print(
            f"  fieldcrypt {op:12} adds {extra:7.3f}s over plaintext = {extra / bound:5.2f}x the AES-GCM floor"
        )
    utils_ok = all(results["fieldcrypt"][op] < results["sqlalchemy-utils"][op] for op in OPERATIONS)
    print(f"  fieldcrypt faster than sqlalchemy-utils on every operation: {utils_ok}")


def run(url: str, rows: int, repeats: int) -> dict[str, dict[str, float]]:
    engine = own_database(url) if url.startswith("postgresql") else sa.create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        return {name: measure(engine, model, rows, repeats) for name, model in VARIANTS.items()}
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()

    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    fieldcrypt.register(keyring)
    keyring.warm_up()
    keyring.blind_index(b"warm", fieldcrypt.Place("bench", "warm"))
    floor = aes_floor(args.rows, args.repeats)
    print(
        f"fieldcrypt {fieldcrypt.__version__} SQLAlchemy benchmark: {args.rows} rows, best of {args.repeats}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        report("SQLite (file)", run(f"sqlite:///{scratch}/bench.db", args.rows, args.repeats), floor)
    if not args.skip_pg:
        where = sa.make_url(args.pg_url).render_as_string()
        report(f"PostgreSQL ({where})", run(args.pg_url, args.rows, args.repeats), floor)


if __name__ == "__main__":
    main()
