"""Benchmark: encrypted DynamoDB attributes against plain ones (PynamoDB and the boto3-only
ItemEncryptor), and KMS calls for many items.

    .venv/bin/python bench/bench_dynamodb.py [--rounds 15] [--n 5000] [--items 10000]

Part 1 (no network): µs per item, in interleaved rounds (bench/_bench_stats.py), median
[lowest-highest round]. An item is a hash key and an 11-character SSN:
- PynamoDB: ``serialize()`` and ``from_raw_data()`` of a plain model (``UnicodeAttribute``), of
  the same model plus a plain 16-byte ``BinaryAttribute`` (the storage twin of a blind index), of
  an ``EncryptedModel`` with the SSN encrypted, and with a ``BlindIndexAttribute`` too;
- boto3-only: ``ItemEncryptor.encrypt_item`` / ``decrypt_item`` of the same item (a plain item
  needs no call at all, so these times are all added cost), with and without a blind index;
- both again for an item with three encrypted strings (SSN, phone, e-mail) against three plain
  ones, to separate the per-item work (binding to the key) from the per-attribute work;
- the floors: raw AES-GCM seal and open of 11 bytes.
Added cost per encrypted attribute = encrypted - plain (target <= 4 µs each way); the blind
index = (indexed - encrypted) - (plain with the binary twin - plain) (target <= 2.5 µs).
Part 2 (moto server on 127.0.0.1): KMS requests to write N items with batch_write and to read
them back with a scan through a fresh keyring (nothing cached).
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

import bench_instructions
from _bench_moto import moto_endpoint
from _bench_stats import Figure, interleaved, over, per_call_us
from pynamodb.attributes import BinaryAttribute, UnicodeAttribute
from pynamodb.models import Model

import fieldcrypt
from fieldcrypt import _aead
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.keys.kms import kms_client
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel

SSN = "123-45-6789"


class PlainPatient(Model):
    class Meta:
        table_name = "bench_plain"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = UnicodeAttribute()


class PlainTwinPatient(Model):
    class Meta:
        table_name = "bench_plain_twin"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = UnicodeAttribute()
    ssn_bidx = BinaryAttribute(legacy_encoding=False)


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


class PlainContact(Model):
    class Meta:
        table_name = "bench_plain_contacts"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = UnicodeAttribute()
    phone = UnicodeAttribute()
    email = UnicodeAttribute()


class EncryptedContact(EncryptedModel):
    class Meta:
        table_name = "bench_contacts"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="bench")
    phone = EncryptedAttribute(UnicodeAttribute(), keyring="bench")
    email = EncryptedAttribute(UnicodeAttribute(), keyring="bench")


CONTACT = {"ssn": SSN, "phone": "+1 555 0100", "email": "pat@example.org"}


def build_variants() -> dict[str, Callable[[], object]]:
    """Every part-1 variant, set up and warmed (one call each: the first use unwraps the data key)."""
    keyring = fieldcrypt.Keyring("bench", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    fieldcrypt.register(keyring, replace=True)
    aead, aad = _aead.Aead(_aead.new_key()), b"x" * 40
    sealed = aead.seal(SSN.encode(), aad)
    models = {
        "plain": PlainPatient("p-1", ssn=SSN),
        "plain+twin": PlainTwinPatient("p-1", ssn=SSN, ssn_bidx=os.urandom(16)),
        "encrypted": EncryptedPatient("p-1", ssn=SSN),
        "indexed": IndexedPatient("p-1", ssn=SSN),
        "plain x3": PlainContact("p-1", **CONTACT),
        "encrypted x3": EncryptedContact("p-1", **CONTACT),
    }
    raw = {name: model.serialize() for name, model in models.items()}
    encryptors = {
        "encrypted": ItemEncryptor(
            table="bench_items",
            key_attributes=["pk"],
            attributes={"ssn": EncryptedField("S", keyring="bench")},
        ),
        "indexed": ItemEncryptor(
            table="bench_items",
            key_attributes=["pk"],
            attributes={"ssn": EncryptedField("S", keyring="bench", searchable=True)},
        ),
    }
    encryptors["encrypted x3"] = ItemEncryptor(
        table="bench_items",
        key_attributes=["pk"],
        attributes={name: EncryptedField("S", keyring="bench") for name in CONTACT},
    )
    item = {"pk": {"S": "p-1"}, "ssn": {"S": SSN}}
    items = {name: item for name in encryptors}
    items["encrypted x3"] = {"pk": {"S": "p-1"}, **{k: {"S": v} for k, v in CONTACT.items()}}
    stored = {name: e.encrypt_item(items[name]) for name, e in encryptors.items()}
    variants = {
        "AES-GCM seal (floor)": lambda: aead.seal(SSN.encode(), aad),
        "AES-GCM open (floor)": lambda: aead.open(sealed, aad),
    }
    for name, model in models.items():
        variants[f"PynamoDB serialize {name}"] = model.serialize
        variants[f"PynamoDB deserialize {name}"] = functools.partial(type(model).from_raw_data, raw[name])
    for name, encryptor in encryptors.items():
        variants[f"ItemEncryptor encrypt {name}"] = functools.partial(encryptor.encrypt_item, items[name])
        variants[f"ItemEncryptor decrypt {name}"] = lambda e=encryptor, s=stored[name]: e.decrypt_item(s)
    for fn in variants.values():
        fn()  # warm: the first use unwraps the data key
    return variants


def local_part(rounds: int, n: int) -> None:
    variants = build_variants()
    samples = interleaved({name: per_call_us(fn, n) for name, fn in variants.items()}, rounds)
    print(f"\nPart 1: µs per item, median [lowest-highest] of {rounds} interleaved rounds of {n} calls")
    for name in variants:
        print(f"  {name:40} {Figure.of(samples[name]).show()}")

    def index_cost(direction: str, twin: bool) -> Figure:
        with_index, without = samples[f"{direction} indexed"], samples[f"{direction} encrypted"]
        if not twin:
            return Figure.of([a - b for a, b in zip(with_index, without, strict=True)])
        plain_twin, plain = samples["PynamoDB serialize plain+twin"], samples["PynamoDB serialize plain"]
        return Figure.of(
            [a - b - (c - d) for a, b, c, d in zip(with_index, without, plain_twin, plain, strict=True)]
        )

    print("Targets (µs): added per encrypted attribute <= 4 each way, blind index <= 2.5")
    for way in ("serialize", "deserialize"):
        added = over(samples, f"PynamoDB {way} encrypted", f"PynamoDB {way} plain")
        per_attribute = over(samples, f"PynamoDB {way} encrypted x3", f"PynamoDB {way} plain x3", 1 / 3)
        print(f"  PynamoDB {way:11}: one attribute {added.show()}; per attribute of 3 {per_attribute.show()}")
    print(f"  PynamoDB blind index, net of its binary twin: {index_cost('PynamoDB serialize', True).show()}")
    for way in ("encrypt", "decrypt"):
        added = Figure.of(samples[f"ItemEncryptor {way} encrypted"])
        per_attribute = Figure.of([a / 3 for a in samples[f"ItemEncryptor {way} encrypted x3"]])
        print(
            f"  ItemEncryptor {way}: one attribute {added.show()}; per attribute of 3 {per_attribute.show()}"
        )
    index = index_cost("ItemEncryptor encrypt", False)
    print(f"  ItemEncryptor blind index (indexed - encrypted): {index.show()}")


def instructions_child(n: int) -> None:
    """Under callgrind: each variant ``n`` times between two counter dumps (on ``os.getppid``,
    which nothing else here calls), as bench/bench_instructions.py does."""
    variants = build_variants()
    mark = os.getppid
    for fn in variants.values():
        for _ in range(200):
            fn()  # warm: specialised bytecode, caches filled
        mark()  # dump: everything before this variant
        for _ in range(n):
            fn()
        mark()  # dump: this variant's n calls


def instructions_part(n: int) -> None:
    """Part 1 in instructions (valgrind's callgrind): the same on every run, whatever the load."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", "--dump-before=os_getppid", f"--callgrind-out-file={out}"]
        subprocess.run(  # noqa: S603 - valgrind on this interpreter and this file
            [*command, sys.executable, __file__, "--instructions-child", "--n", str(n)],
            check=True,
            capture_output=True,
        )
        dumps = sorted(glob.glob(out + ".*"), key=lambda path: int(path.rsplit(".", 1)[1]))
        counts = [bench_instructions._total(path) / n for path in dumps]
    names = list(build_variants())
    per = {name: counts[2 * i + 1] for i, name in enumerate(names)}  # odd dumps: the loops
    print(f"\nPart 1 in instructions per item (callgrind, {n} calls each)")
    for name in names:
        print(f"  {name:40} {per[name]:8.0f}")
    for way in ("serialize", "deserialize"):
        added = per[f"PynamoDB {way} encrypted"] - per[f"PynamoDB {way} plain"]
        three = (per[f"PynamoDB {way} encrypted x3"] - per[f"PynamoDB {way} plain x3"]) / 3
        print(f"  PynamoDB {way:11} added: one attribute {added:6.0f}; per attribute of 3 {three:6.0f}")
    twin = per["PynamoDB serialize plain+twin"] - per["PynamoDB serialize plain"]
    index = per["PynamoDB serialize indexed"] - per["PynamoDB serialize encrypted"] - twin
    print(f"  PynamoDB blind index, net of its binary twin: {index:6.0f}")
    for way in ("encrypt", "decrypt"):
        one, three = per[f"ItemEncryptor {way} encrypted"], per[f"ItemEncryptor {way} encrypted x3"] / 3
        print(f"  ItemEncryptor {way} added: one attribute {one:6.0f}; per attribute of 3 {three:6.0f}")
    index = per["ItemEncryptor encrypt indexed"] - per["ItemEncryptor encrypt encrypted"]
    print(f"  ItemEncryptor blind index: {index:6.0f}")
    print(f"  floors: AES-GCM seal {per['AES-GCM seal (floor)']:.0f}, open {per['AES-GCM open (floor)']:.0f}")


def moto_part(items: int) -> None:
    with moto_endpoint() as endpoint:
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
    print(f"\nPart 2: {items} items through moto server on loopback (KMS master key, DynamoDB key store)")
    print(f"{'phase':28} {'items':>7} {'KMS calls':>10} {'KMS calls/item':>15} {'s (moto)':>9}")
    print(f"{'batch_write':28} {items:7d} {write_calls:10d} {write_calls / items:15.6f} {write_s:9.1f}")
    print(f"{'scan, fresh keyring':28} {read:7d} {read_calls:10d} {read_calls / read:15.6f} {read_s:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="fieldcrypt DynamoDB benchmark")
    parser.add_argument(
        "--items", type=int, default=10_000, help="items written and read in part 2 (0: skip)"
    )
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds in part 1")
    parser.add_argument("--n", type=int, default=5_000, help="calls per variant per round in part 1")
    parser.add_argument(
        "--instructions", action="store_true", help="count part 1 in instructions (callgrind) instead"
    )
    parser.add_argument("--instructions-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instructions_child:
        instructions_child(args.n)
        return
    if args.instructions:
        instructions_part(args.n)
        return
    local_part(args.rounds, args.n)
    if args.items:
        moto_part(args.items)


if __name__ == "__main__":
    main()
