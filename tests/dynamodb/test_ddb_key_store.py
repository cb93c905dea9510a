"""DynamoDBKeyStore: the KeyStore contract on a DynamoDB table, and keyrings on it serving either ORM."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import fieldcrypt
from fieldcrypt import DataKeyRecord, Purpose, Status
from fieldcrypt.stores import KeyStoreConflict
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore, KeyStoreUnavailable


@pytest.fixture
def store(aws_client: Callable[..., Any]) -> Iterator[DynamoDBKeyStore]:
    """A fresh key-store table on moto."""
    key_store = DynamoDBKeyStore(f"keys-{uuid.uuid4().hex[:8]}", client=aws_client("dynamodb", "us-east-1"))
    key_store.create_table()
    yield key_store
    key_store.client.delete_table(TableName=key_store.table)


def record(
    key_id: str, keyring: str = "pii", purpose: Purpose = Purpose.ENCRYPTION, age: int = 0
) -> DataKeyRecord:
    created = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC) + timedelta(seconds=age)
    return DataKeyRecord(
        key_id, keyring, purpose, Status.ACTIVE, created, {"local:ab": b"\x00wrapped", "arn:x": b"y"}
    )


def test_is_a_key_store(store: DynamoDBKeyStore) -> None:
    """It satisfies the KeyStore protocol, and the lazy fieldcrypt.DynamoDBKeyStore export is this class."""
    assert isinstance(store, fieldcrypt.KeyStore)
    assert fieldcrypt.DynamoDBKeyStore is DynamoDBKeyStore


def test_put_get_round_trip(store: DynamoDBKeyStore) -> None:
    """A record comes back field for field, microseconds and wrapped bytes included."""
    original = record("k1")
    store.put(original)
    assert store.get("k1") == original
    assert store.get("missing") is None


def test_put_never_overwrites(store: DynamoDBKeyStore) -> None:
    """A second put of a taken id raises KeyStoreConflict and leaves the first record intact."""
    store.put(record("k1"))
    with pytest.raises(KeyStoreConflict, match=r"^data key k1 already exists$"):
        store.put(record("k1", keyring="other"))
    stored = store.get("k1")
    assert stored is not None
    assert stored.keyring == "pii"


def test_update_checks_the_revision(store: DynamoDBKeyStore) -> None:
    """update stores revision+1 only if the stored revision is the one read; a stale update conflicts."""
    store.put(record("k1"))
    read = store.get("k1")
    assert read is not None
    retired = store.update(read.evolve(status=Status.RETIRED))
    assert retired.revision == 1
    assert store.get("k1") == retired
    with pytest.raises(KeyStoreConflict, match=r"^data key k1 changed since it was read$"):
        store.update(read.evolve(status=Status.DESTROYED))
    with pytest.raises(KeyStoreConflict):
        store.update(record("never-put"))
    assert store.get("k1") == retired


def test_list_filters_and_orders(store: DynamoDBKeyStore) -> None:
    """list returns one keyring's records (optionally one purpose), oldest first, across scan pages."""
    for i in range(5):
        store.put(record(f"e{i}", age=10 - i))
    store.put(record("b0", purpose=Purpose.BLIND_INDEX))
    store.put(record("x0", keyring="other"))
    assert [r.key_id for r in store.list("pii", Purpose.ENCRYPTION)] == ["e4", "e3", "e2", "e1", "e0"]
    assert [r.key_id for r in store.list("pii")] == ["b0", "e4", "e3", "e2", "e1", "e0"]
    assert [r.key_id for r in store.list("other")] == ["x0"]
    assert store.list("nobody") == []


def test_reads_never_write(store: DynamoDBKeyStore, request_log: Any) -> None:
    """get and list issue only reads, so a read-only replica region could serve them."""
    store.put(record("k1"))
    request_log.attach(store.client)
    store.get("k1")
    store.list("pii")
    assert request_log.operations() == ["GetItem", "Query"]


def test_missing_table_is_a_clear_error(aws_client: Callable[..., Any]) -> None:
    """A missing table names itself, its region and how to create it."""
    missing = DynamoDBKeyStore("no-such-table", client=aws_client("dynamodb", "eu-west-1"))
    with pytest.raises(
        fieldcrypt.ConfigurationError, match=r"'no-such-table' does not exist in eu-west-1: create it"
    ):
        missing.get("k1")


def test_other_failures_are_key_store_errors(store: DynamoDBKeyStore) -> None:
    """A DynamoDB failure other than a conflict raises KeyStoreUnavailable (a FieldcryptError) with its cause."""
    from botocore.stub import Stubber

    with Stubber(store.client) as stub:
        stub.add_client_error("put_item", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(
            KeyStoreUnavailable, match=r"PutItem failed \(ProvisionedThroughputExceededException\)"
        ):
            store.put(record("k1"))


def test_create_table_is_idempotent(store: DynamoDBKeyStore) -> None:
    """Creating an existing key-store table is not an error; the table keeps its key and its keyring index."""
    store.create_table()
    described = store.client.describe_table(TableName=store.table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "key_id", "KeyType": "HASH"}]
    assert [(i["IndexName"], i["KeySchema"]) for i in described["GlobalSecondaryIndexes"]] == [
        ("keyring-index", [{"AttributeName": "keyring", "KeyType": "HASH"}])
    ]


def test_keyring_on_dynamodb_store_encrypts_and_rotates(store: DynamoDBKeyStore) -> None:
    """A keyring on the DynamoDB store creates, finds and rotates keys like on any store (another process reads)."""
    master = fieldcrypt.LocalMasterKey.generate()
    writer = fieldcrypt.Keyring("pii", master, store)
    place = fieldcrypt.Place("users", "ssn", 1)
    first = writer.encrypt("123-45-6789", place)
    writer.rotate()
    second = writer.encrypt("123-45-6789", place)
    assert writer.key_id_of(first) != writer.key_id_of(second)
    reader = fieldcrypt.Keyring("pii", master, DynamoDBKeyStore(store.table, client=store.client))
    assert reader.decrypt(first, place) == reader.decrypt(second, place) == b"123-45-6789"
    assert [r.key_id for r in store.list("pii", Purpose.ENCRYPTION)] == [
        writer.key_id_of(first),
        writer.key_id_of(second),
    ]


def test_sql_key_store_serves_a_pynamodb_model(sqlite_engine: Any, moto_endpoint: str) -> None:
    """Either store serves either ORM: a PynamoDB model round-trips with its keys in a SqlKeyStore."""
    from ddb_models import Patient

    sql_store = fieldcrypt.SqlKeyStore(sqlite_engine)
    sql_store.create_table()
    fieldcrypt.register(fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), sql_store))
    Patient.Meta.host = moto_endpoint
    Patient._connection = None
    Patient.create_table(wait=True)
    try:
        Patient("p-1", ssn="123-45-6789").save()
        assert Patient.get("p-1").ssn == "123-45-6789"
        assert len(sql_store.list("pii")) == 3  # the anchor, one data key, one blind-index key
    finally:
        Patient.delete_table()
        Patient._connection = None
