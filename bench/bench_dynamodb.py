"""Benchmark: encrypted PynamoDB attributes against plain ones, and KMS calls for many items.

Part 1 (no network): microseconds per item serialize/deserialize of a model with one SSN
attribute, plain vs encrypted (with and without a blind index), against the raw AES-GCM floor.
Part 2 (moto server on 127.0.0.1): KMS requests to write N items with batch_write and to read them
back with a scan in a fresh process-like keyring (nothing cached).

    .venv/bin/python bench/bench_dynamodb.py [--items 10000] [--rounds 20000]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

import fieldcrypt
from fieldcrypt import _aead
from fieldcrypt.keys.kms import kms_client
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel

SSN = "123-45-6789"


class PlainPatient(Model):
    class Meta:
        table_name = "bench_plain"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = UnicodeAttribute()


class EncryptedPatient(EncryptedModel):
    class Meta:
        table_name = "bench_patients"
        billing_mode = "PAY_PER_REQUEST"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="bench")


class IndexedPatient(EncryptedModel):
    class Meta:
        table_name = "bench_indexed"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="bench")
    ssn_bidx = BlindIndexAttribute(of="ssn")


def per_op_us(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm: first use unwraps the data key
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds * 1e6)
    return best


def local_part(rounds: int) -> None:
    keyring = fieldcrypt.Keyring("bench", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    fieldcrypt.register(keyring, replace=True)
    aead, aad = _aead.Aead(_aead.new_key()), b"x" * 40
    plain, encrypted, indexed = (
        PlainPatient("p-1", ssn=SSN),
        EncryptedPatient("p-1", ssn=SSN),
        IndexedPatient("p-1", ssn=SSN),
    )
    raw_plain, raw_encrypted, raw_indexed = plain.serialize(), encrypted.serialize(), indexed.serialize()
    sealed = aead.seal(SSN.encode(), aad)
    rows = [
        ("AES-GCM seal, 11 bytes (floor)", per_op_us(lambda: aead.seal(SSN.encode(), aad), rounds), "floor"),
        ("AES-GCM open, 11 bytes (floor)", per_op_us(lambda: aead.open(sealed, aad), rounds), "floor"),
        ("serialize plain item", per_op_us(plain.serialize, rounds), "plain-w"),
        ("serialize encrypted item", per_op_us(encrypted.serialize, rounds), "w"),
        ("serialize encrypted + blind index", per_op_us(indexed.serialize, rounds), "w"),
        (
            "deserialize plain item",
            per_op_us(lambda: PlainPatient.from_raw_data(raw_plain), rounds),
            "plain-r",
        ),
        (
            "deserialize encrypted item",
            per_op_us(lambda: EncryptedPatient.from_raw_data(raw_encrypted), rounds),
            "r",
        ),
        (
            "deserialize encrypted + index",
            per_op_us(lambda: IndexedPatient.from_raw_data(raw_indexed), rounds),
            "r",
        ),
    ]
    floor_w, floor_r = rows[0][1], rows[1][1]
    plain_w, plain_r = rows[2][1], rows[5][1]
    print(f"\nPart 1: one item (hash key + SSN), no network, best of 3 x {rounds} rounds")
    print(f"{'operation':36} {'us/op':>8} {'x plain':>8} {'x AES floor':>12}")
    for name, us, kind in rows:
        vs_plain = (
            ""
            if kind in ("floor", "plain-w", "plain-r")
            else f"{us / (plain_w if kind == 'w' else plain_r):.1f}"
        )
        vs_floor = "" if kind == "floor" else f"{us / (floor_w if kind in ('w', 'plain-w') else floor_r):.1f}"
        print(f"{name:36} {us:8.2f} {vs_plain:>8} {vs_floor:>12}")
    overhead = (rows[3][1] - plain_w, rows[6][1] - plain_r)
    print(f"encryption adds {overhead[0]:.2f} us per written and {overhead[1]:.2f} us per read attribute")


def moto_part(items: int) -> None:
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        kms = kms_client("us-east-1", endpoint_url=endpoint)
        calls: list[str] = []
        kms.meta.events.register("before-call.kms.*", lambda model, **_: calls.append(model.name))
        key_arn = kms.create_key(Description=f"bench {uuid.uuid4()}")["KeyMetadata"]["Arn"]
        store = fieldcrypt.DynamoDBKeyStore("bench_keys", region="us-east-1", endpoint_url=endpoint)
        store.create_table()
        master = fieldcrypt.KmsMasterKey(key_arn, client=kms)
        fieldcrypt.register(fieldcrypt.Keyring("bench", master, store), replace=True)
        EncryptedPatient.Meta.host, EncryptedPatient.Meta.region = endpoint, "us-east-1"
        EncryptedPatient._connection = None
        EncryptedPatient.create_table(wait=True)
        calls.clear()
        start = time.perf_counter()
        with EncryptedPatient.batch_write() as batch:
            for i in range(items):
                batch.save(EncryptedPatient(f"p-{i}", ssn=f"{i:09d}"))
        write_s, write_calls = time.perf_counter() - start, len(calls)
        fieldcrypt.register(fieldcrypt.Keyring("bench", master, store), replace=True)  # cold cache
        calls.clear()
        start = time.perf_counter()
        read = sum(1 for _ in EncryptedPatient.scan())
        read_s, read_calls = time.perf_counter() - start, len(calls)
    finally:
        server.stop()
    print(f"\nPart 2: {items} items through moto server on loopback (KMS master key, DynamoDB key store)")
    print(f"{'phase':28} {'items':>7} {'KMS calls':>10} {'KMS calls/item':>15} {'s (moto)':>9}")
    print(f"{'batch_write':28} {items:7d} {write_calls:10d} {write_calls / items:15.6f} {write_s:9.1f}")
    print(f"{'scan, fresh keyring':28} {read:7d} {read_calls:10d} {read_calls / read:15.6f} {read_s:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="fieldcrypt DynamoDB benchmark")
    parser.add_argument("--items", type=int, default=10_000, help="items written and read in part 2")
    parser.add_argument("--rounds", type=int, default=20_000, help="timed rounds per operation in part 1")
    args = parser.parse_args()
    local_part(args.rounds)
    moto_part(args.items)


if __name__ == "__main__":
    main()
