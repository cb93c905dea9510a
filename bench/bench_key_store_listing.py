"""Benchmark: one keyring's listing in a DynamoDB key store shared by many tenants, through the
keyring index (a Query) against a table made before it (a Scan, as fieldcrypt 0.3 listed).

    .venv/bin/python bench/bench_key_store_listing.py [--rounds 15] [--tenants 50,500,2000]

Against a moto server on 127.0.0.1. Each table holds 3 records per tenant (anchor, data key,
blind-index key), written raw with BatchWriteItem; both tables hold the same items. Per listing of
one tenant's keyring: the items DynamoDB evaluates (``ScannedCount``: what read capacity is
charged for, the figure that carries over to real DynamoDB), the client's CPU time
(``time.thread_time``: parsing what comes back; the machine is shared, so CPU not wall) and the
wall time against moto (moto's own speed, for scale only). Medians over interleaved rounds with
[lowest-highest round] (bench/_bench_stats.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

from _bench_moto import moto_endpoint
from _bench_stats import Figure, interleaved

from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore, _item

PURPOSES = (Purpose.ANCHOR, Purpose.ENCRYPTION, Purpose.BLIND_INDEX)


def fill(store: DynamoDBKeyStore, tenants: int) -> None:
    """3 records per tenant keyring ``tenant-pii/t-NNNNN``, raw, 25 per BatchWriteItem."""
    created = datetime(2026, 1, 1, tzinfo=UTC)
    items = [
        _item(
            DataKeyRecord(
                f"{t:08x}{p:02x}" + "0" * 30,
                f"tenant-pii/t-{t:05d}",
                purpose,
                Status.ACTIVE,
                created,
                {"arn:aws:kms:us-east-1:111122223333:key/x": os.urandom(167)},
                generation=1,
            )
        )
        for t in range(tenants)
        for p, purpose in enumerate(PURPOSES)
    ]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        store.client.batch_write_item(RequestItems={store.table: batch})


def old_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "key_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "key_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def listing(store: DynamoDBKeyStore, keyring: str, evaluated: list[int]) -> dict[str, Any]:
    """Variants timing one listing: CPU µs, wall ms; the items evaluated go to ``evaluated``."""
    seen: list[int] = []
    store.client.meta.events.register(
        "after-call.dynamodb.*", lambda parsed, **_: seen.append(int(parsed.get("ScannedCount", 0)))
    )

    def cpu() -> float:
        seen.clear()
        start = time.thread_time()
        found = store.list(keyring)
        spent = (time.thread_time() - start) * 1e6
        assert len(found) == 3, found
        evaluated.append(sum(seen))
        return spent

    def wall() -> float:
        start = time.perf_counter()
        store.list(keyring)
        return (time.perf_counter() - start) * 1e3

    return {"cpu": cpu, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description="key-store listing: keyring index against a scan")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tenants", default="50,500,2000")
    args = parser.parse_args()
    logging.getLogger("fieldcrypt").setLevel(logging.ERROR)  # the old table's scan warning
    rows = []
    with moto_endpoint() as endpoint:
        for tenants in (int(n) for n in args.tenants.split(",")):
            indexed = DynamoDBKeyStore(f"indexed_{tenants}", region="us-east-1", endpoint_url=endpoint)
            indexed.create_table()
            scanned = DynamoDBKeyStore(f"scanned_{tenants}", region="us-east-1", endpoint_url=endpoint)
            old_table(scanned.client, scanned.table)
            fill(indexed, tenants)
            fill(scanned, tenants)
            keyring = f"tenant-pii/t-{tenants // 2:05d}"
            counts: dict[str, list[int]] = {"query": [], "scan": []}
            q, s = listing(indexed, keyring, counts["query"]), listing(scanned, keyring, counts["scan"])
            samples = interleaved(
                {
                    "query cpu": q["cpu"],
                    "scan cpu": s["cpu"],
                    "query wall": q["wall"],
                    "scan wall": s["wall"],
                },
                args.rounds,
            )
            rows.append((tenants, counts, {name: Figure.of(v) for name, v in samples.items()}))
    print(f"One tenant's listing, {args.rounds} interleaved rounds, median [lowest-highest round]")
    print(
        f"{'tenants':>7} {'records':>7} {'evaluated query/scan':>21} {'client CPU µs query':>22} "
        f"{'client CPU µs scan':>22} {'CPU ratio':>9} {'wall ms query (moto)':>22} {'wall ms scan (moto)':>22}"
    )
    for tenants, counts, f in rows:
        evaluated = f"{max(counts['query'])}/{max(counts['scan'])}"
        ratio = f["scan cpu"].median / f["query cpu"].median
        print(
            f"{tenants:7d} {3 * tenants:7d} {evaluated:>21} {f['query cpu'].show('.0f'):>22} "
            f"{f['scan cpu'].show('.0f'):>22} {ratio:9.1f} {f['query wall'].show('.1f'):>22} "
            f"{f['scan wall'].show('.1f'):>22}"
        )


if __name__ == "__main__":
    main()
