"""Benchmark: what a write costs in a write-only producer (RSA public key) against a symmetric writer.

Run: python bench/bench_producer.py [--rounds 7] [--values 2000] [--rows 10000]

KMS is moto, in this process (fieldcrypt.testing.moto_server), so a KMS call here costs a
loopback HTTP round trip, far less than a real KMS call (several milliseconds in-region).
Every case runs once per round, in a shuffled order (bench/_bench_stats.py), and each figure is
the median over rounds with its spread [lowest-highest round]; ratios are taken round by round.
Four views:

1. per value, steady state (the data key already in memory): Keyring.encrypt of an SSN, against
   copying the plaintext and a raw AES-GCM encrypt with the same key size and AAD length;
2. per data key: wrapping it (producer: RSA-OAEP with the public key, locally; symmetric: a KMS
   Encrypt call; local master key: AES-GCM);
3. per value for a fresh process writing --values values (its first data key included);
4. per row through the ORM (SQLite, executemany): --rows rows with a plaintext column, an
   Encrypted column under a symmetric KMS key, and the same column in a producer.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import boto3
import sqlalchemy as sa
from _bench_stats import Figure, interleaved, ratio
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.keys.kms_rsa import RsaProducerKey
from fieldcrypt.sqlalchemy import Encrypted
from fieldcrypt.testing import moto_server

SSN = b"123-45-6789"
PLACE = fieldcrypt.Place("signups", "ssn")


class Base(DeclarativeBase):
    pass


class Plain(Base):
    __tablename__ = "plain"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str] = mapped_column(String(11))


class Signup(Base):
    __tablename__ = "signups"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str] = mapped_column(Encrypted(String(11), keyring="pii"))


def timed(fn: Callable[[], object], count: int) -> float:
    """Microseconds per unit for one run of ``fn`` doing ``count`` units."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / count * 1e6


def rounds(cases: dict[str, Callable[[], float]], n: int) -> dict[str, list[float]]:
    return interleaved(cases, n)


def report(title: str, samples: dict[str, list[float]], baselines: dict[str, str]) -> None:
    print(f"\n{title}")
    print(f"{'case':46} {'median [spread]':>26}   ratios, median [spread]")
    for name, values in samples.items():
        ratios = "  ".join(
            f"{ratio(samples, name, b).show('.3g')} x {label}" for label, b in baselines.items()
        )
        print(f"{name:46} {Figure.of(values).show():>26}   {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--values", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log is noise here

    with moto_server() as endpoint:
        kms = boto3.client("kms", region_name="us-east-1", endpoint_url=endpoint)
        symmetric_arn = kms.create_key()["KeyMetadata"]["Arn"]
        rsa_arns = {
            bits: kms.create_key(KeySpec=f"RSA_{bits}", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
            for bits in (3072, 4096)
        }
        symmetric = fieldcrypt.KmsMasterKey(symmetric_arn, client=kms)
        producers = {bits: RsaProducerKey.from_kms(arn, client=kms) for bits, arn in rsa_arns.items()}
        local = fieldcrypt.LocalMasterKey.generate()

        def keyring(master: fieldcrypt.MasterKey) -> fieldcrypt.Keyring:
            return fieldcrypt.Keyring("pii", master, fieldcrypt.MemoryKeyStore())

        # 1. per value, steady state
        n = 2_000  # short runs: on a shared, loaded machine a long loop measures the load
        warm = {"symmetric KMS": keyring(symmetric), "producer RSA-3072": keyring(producers[3072])}
        for ring in warm.values():
            ring.encrypt(SSN, PLACE)
        aad = bytes(fmt.HEADER_BYTES) + PLACE.encoded
        raw = AESGCM(os.urandom(32))

        def many(fn: Callable[[], object]) -> Callable[[], float]:
            return lambda: timed(lambda: [fn() for _ in range(n)], n)

        steady: dict[str, Callable[[], float]] = {
            "plaintext copy": many(lambda: bytes(SSN)),
            "raw AES-GCM encrypt": many(lambda: raw.encrypt(os.urandom(12), SSN, aad)),
        }
        for name, ring in warm.items():
            steady[f"Keyring.encrypt, {name} writer"] = many(lambda ring=ring: ring.encrypt(SSN, PLACE))  # type: ignore[misc]
        report(
            "1. µs per value, data key in memory",
            rounds(steady, args.rounds),
            {"plain": "plaintext copy", "raw": "raw AES-GCM encrypt"},
        )

        # 2. per data key
        context = {
            "fieldcrypt:keyring": "pii",
            "fieldcrypt:data-key-id": "00" * 20,
            "fieldcrypt:purpose": "encryption",
        }
        data_key = os.urandom(32)
        keys = 50
        wraps: dict[str, Callable[[], float]] = {
            "local master key (AES-GCM)": lambda: timed(
                lambda: [local.wrap(data_key, context) for _ in range(keys)], keys
            ),
            "symmetric KMS Encrypt (moto, loopback)": lambda: timed(
                lambda: [symmetric.wrap(data_key, context) for _ in range(keys)], keys
            ),
        }
        for bits, producer in producers.items():
            wraps[f"producer RSA-{bits} OAEP (local)"] = lambda p=producer: timed(  # type: ignore[misc]
                lambda: [p.wrap(data_key, context) for _ in range(keys)], keys
            )
        report(
            "2. µs per data key wrapped",
            rounds(wraps, args.rounds),
            {"symmetric": "symmetric KMS Encrypt (moto, loopback)"},
        )

        # 3. a fresh process's first values, its first data key included
        cold: dict[str, Callable[[], float]] = {}
        for name, master in (("symmetric KMS", symmetric), ("producer RSA-3072", producers[3072])):

            def fresh_process(m: fieldcrypt.MasterKey = master) -> float:
                ring = keyring(m)
                return timed(lambda: [ring.encrypt(SSN, PLACE) for _ in range(args.values)], args.values)

            cold[f"{args.values} values, {name} writer"] = fresh_process
        report(
            "3. µs per value for a fresh process (first data key included)",
            rounds(cold, args.rounds),
            {"symmetric": f"{args.values} values, symmetric KMS writer"},
        )

        # 4. per row through the ORM
        engine = sa.create_engine("sqlite://")
        Base.metadata.create_all(engine)
        orm_rings = {"symmetric KMS": keyring(symmetric), "producer RSA-3072": keyring(producers[3072])}

        def insert(model: Any, ring: fieldcrypt.Keyring | None) -> float:
            if ring is not None:
                fieldcrypt.register(ring, replace=True)
            with engine.begin() as conn:
                conn.execute(sa.delete(model))

            def write() -> None:
                with Session(engine) as session:
                    session.add_all(model(id=i, ssn="123-45-6789") for i in range(args.rows))
                    session.commit()

            return timed(write, args.rows)

        orm: dict[str, Callable[[], float]] = {"plaintext column": lambda: insert(Plain, None)}
        for name, ring in orm_rings.items():
            orm[f"Encrypted column, {name} writer"] = lambda r=ring: insert(Signup, r)  # type: ignore[misc]
        report(
            f"4. µs per row, {args.rows} ORM rows into SQLite",
            rounds(orm, max(3, args.rounds // 2)),
            {"plain": "plaintext column", "symmetric": "Encrypted column, symmetric KMS writer"},
        )


if __name__ == "__main__":
    main()
