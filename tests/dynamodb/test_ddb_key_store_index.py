"""The DynamoDB key store lists one keyring's records through its keyring index: with a keyring per
tenant, one tenant's refresh reads its own few records, not every tenant's; an older table without
the index is scanned (with a warning) until `fieldcrypt keys upgrade` adds it; a process always
lists its own writes, even before the index shows them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fieldcrypt
from fieldcrypt import Place, Purpose
from fieldcrypt.keys.record import DataKeyRecord
from fieldcrypt.rotation import admin
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore
from fieldcrypt.stores.recent import RecentWrites

TENANTS = [f"t-{i:02d}" for i in range(50)]
PLACE = Place("members", "ssn", "m-1")


class Reads:
    """Each DynamoDB read a client makes: (operation, items it evaluated, items it returned)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, int, int]] = []
        client.meta.events.register("after-call.dynamodb.*", self._record)

    def _record(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name in ("Query", "Scan", "GetItem"):
            returned = len(parsed.get("Items", [])) if "Items" in parsed else int("Item" in parsed)
            self.calls.append((model.name, int(parsed.get("ScannedCount", returned)), returned))

    def operations(self) -> set[str]:
        return {name for name, _, _ in self.calls}

    def evaluated(self) -> int:
        return sum(evaluated for _, evaluated, _ in self.calls)


@pytest.fixture
def table(aws_client: Callable[..., Any]) -> Iterator[str]:
    """A fresh key-store table name on moto (deleted afterwards, if made)."""
    name = f"keys-{uuid.uuid4().hex[:8]}"
    yield name
    client = aws_client("dynamodb", "us-east-1")
    if name in client.list_tables()["TableNames"]:
        client.delete_table(TableName=name)


def _tenants(store: DynamoDBKeyStore, master: fieldcrypt.LocalMasterKey) -> fieldcrypt.TenantKeyrings:
    return fieldcrypt.TenantKeyrings("tenant-pii", key_store=store, master_key_for=lambda tenant: master)


def _old_table(client: Any, name: str) -> None:
    """A key-store table as fieldcrypt 0.3 made it: the key_id key, no index."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "key_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "key_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_one_tenants_refresh_reads_only_its_records(aws_client: Callable[..., Any], table: str) -> None:
    """50 tenants with keys in one table: a new process's refresh and read of one tenant queries its index and evaluates that tenant's 2 records per listing, never scanning the others' 98."""
    writer_store = DynamoDBKeyStore(table, client=aws_client("dynamodb", "us-east-1"))
    writer_store.create_table()
    master = fieldcrypt.LocalMasterKey.generate()
    writer = _tenants(writer_store, master)
    values = {tenant: writer.keyring_for(tenant).encrypt(b"123-45-6789", PLACE) for tenant in TENANTS}
    everything = writer_store.client.scan(TableName=table)["Items"]
    assert len(everything) == 2 * len(TENANTS)  # each tenant: its anchor and one data key

    client = aws_client("dynamodb", "us-east-1")
    reads = Reads(client)
    reader = _tenants(DynamoDBKeyStore(table, client=client), master).keyring_for("t-07")
    assert reader.decrypt(values["t-07"], PLACE) == b"123-45-6789"
    assert reader.chosen_key_id() == reader.key_id_of(values["t-07"])
    reader.refresh()
    assert reader.current_key_id() == reader.key_id_of(values["t-07"])
    assert reads.operations() <= {"Query", "GetItem"}
    listings = [(evaluated, returned) for name, evaluated, returned in reads.calls if name == "Query"]
    assert listings
    assert all(found == (2, 2) for found in listings)
    assert reads.evaluated() <= 2 * len(listings) + 1  # the listings, and one GetItem of the data key
    raw = {item["key_id"]["S"]: item for item in everything}
    for record in reader.records():  # what it read are ciphertexts of keys, never a key
        assert raw[record.key_id]["keyring"] == {"S": "tenant-pii/t-07"}
        assert all(len(bytes(w["B"])) > 32 for w in raw[record.key_id]["wraps"]["M"].values())


def test_an_old_table_is_scanned_with_a_warning_until_keys_upgrade_adds_the_index(
    aws_client: Callable[..., Any], table: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A table without the index still serves every listing (a consistent scan) and warns once with the upgrade command; `keys upgrade` (admin.upgrade) adds the index, after which listings query it."""
    client = aws_client("dynamodb", "us-east-1")
    _old_table(client, table)
    store = DynamoDBKeyStore(table, client=client)
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)
    reads = Reads(client)
    with caplog.at_level(logging.WARNING, logger="fieldcrypt"):
        value = keyring.encrypt(b"x", PLACE)
        keyring.refresh()
        assert keyring.decrypt(value, PLACE) == b"x"
    warnings = [r.getMessage() for r in caplog.records if "keyring-index" in r.getMessage()]
    assert len(warnings) == 1
    assert "fieldcrypt keys upgrade" in warnings[0]
    assert "Scan" in reads.operations()

    admin.upgrade(keyring)  # what `fieldcrypt keys upgrade` runs
    described = client.describe_table(TableName=table)["Table"]
    assert [i["IndexName"] for i in described["GlobalSecondaryIndexes"]] == ["keyring-index"]
    assert store.upgrade_table() is False  # idempotent
    reads.calls.clear()
    assert [r.purpose for r in store.list("pii")] == [Purpose.ANCHOR, Purpose.ENCRYPTION]
    assert reads.operations() == {"Query"}


def test_own_writes_are_listed_while_the_index_has_not_caught_up(
    aws_client: Callable[..., Any], table: str
) -> None:
    """With an index that shows no item yet (as a GSI just after a write), a keyring on the store still finds the blind-index key it just made and uses the key rotate() just made; another store object sees nothing."""
    client = aws_client("dynamodb", "us-east-1")
    store = DynamoDBKeyStore(table, client=client)
    store.create_table()

    def lagging(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name == "Query":
            parsed["Items"], parsed["Count"] = [], 0

    client.meta.events.register("after-call.dynamodb.Query", lagging)
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)
    token = keyring.blind_index(b"123456789", Place("members", "ssn"))  # makes the first index key
    assert token == keyring.blind_index(b"123456789", Place("members", "ssn"))
    first = keyring.current_key_id()
    rotated = keyring.rotate()
    assert keyring.current_key_id() == rotated.key_id != first
    assert DynamoDBKeyStore(table, client=client).list("pii") == []  # the lag is real


def test_recent_writes_expire_and_the_newer_revision_wins() -> None:
    """A listing gets this process's writes of its keyring and purpose for a minute, replacing an older revision it shows, never a newer one."""
    from datetime import UTC, datetime

    now = [0.0]
    recent = RecentWrites(clock=lambda: now[0])

    def record(key_id: str, revision: int, keyring: str = "pii") -> DataKeyRecord:
        return DataKeyRecord(
            key_id,
            keyring,
            Purpose.ENCRYPTION,
            fieldcrypt.Status.ACTIVE,
            datetime(2026, 1, 1, tzinfo=UTC),
            {},
            revision=revision,
        )

    recent.wrote(record("a", 2))
    recent.wrote(record("b", 0, keyring="other"))
    assert recent.merged("pii", None, [record("a", 1)]) == [record("a", 2)]
    assert recent.merged("pii", None, [record("a", 3)]) == [record("a", 3)]
    assert recent.merged("pii", Purpose.BLIND_INDEX, []) == []
    assert recent.merged("pii", Purpose.ENCRYPTION, []) == [record("a", 2)]
    now[0] = 61.0
    assert recent.merged("pii", None, []) == []
