"""The DynamoDB key-store table's layout: its key, its keyring index, and adding the index to a
table made before it (``fieldcrypt keys upgrade``; docs/dynamodb.md, "DynamoDBKeyStore")."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from fieldcrypt.errors import KeyStoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INDEX = "keyring-index"
RECHECK_SECONDS = 300.0  # how long a process without the index scans before looking for it again
_WAIT_SECONDS = 600.0  # an index over a few thousand records builds in minutes at most

_INDEX_KEY = [{"AttributeName": "keyring", "KeyType": "HASH"}]
_KEYRING = {"AttributeName": "keyring", "AttributeType": "S"}


def new_table(table: str) -> dict[str, Any]:
    """CreateTable parameters: on-demand billing, ``key_id`` the key, the keyring index with it."""
    return {
        "TableName": table,
        "KeySchema": [{"AttributeName": "key_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "key_id", "AttributeType": "S"}, _KEYRING],
        "GlobalSecondaryIndexes": [
            {"IndexName": INDEX, "KeySchema": _INDEX_KEY, "Projection": {"ProjectionType": "ALL"}}
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def add_index(client: DynamoDBClient, table: str, *, wait: bool) -> bool:
    """Create the keyring index on ``table`` unless it has one; True when it was created.

    A provisioned table's index gets the table's own read and write capacity. ``wait``: until
    DynamoDB has built it (it is built online; the table serves reads and writes meanwhile).

    Raises:
        botocore.exceptions.ClientError: DynamoDB refused (the caller names the table).
        KeyStoreUnavailable: the index was still not active after 10 minutes.
    """
    described = client.describe_table(TableName=table)["Table"]
    if any(i["IndexName"] == INDEX for i in described.get("GlobalSecondaryIndexes", [])):
        return False
    create: dict[str, Any] = {
        "IndexName": INDEX,
        "KeySchema": _INDEX_KEY,
        "Projection": {"ProjectionType": "ALL"},
    }
    if described.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED") == "PROVISIONED":
        throughput = described["ProvisionedThroughput"]
        create["ProvisionedThroughput"] = {
            "ReadCapacityUnits": throughput["ReadCapacityUnits"],
            "WriteCapacityUnits": throughput["WriteCapacityUnits"],
        }
    update: dict[str, Any] = {
        "TableName": table,
        "AttributeDefinitions": [_KEYRING],
        "GlobalSecondaryIndexUpdates": [{"Create": create}],
    }
    client.update_table(**update)
    if wait:
        _wait_active(client, table)
    return True


def _wait_active(client: DynamoDBClient, table: str) -> None:
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        indexes = client.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
        if any(i["IndexName"] == INDEX and i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in indexes):
            return
        time.sleep(5)
    raise KeyStoreUnavailable(
        f"key-store table {table!r}: the {INDEX} index is still being built; listings scan until it is active"
    )


def index_missing(exc: ClientError) -> bool:
    """True for DynamoDB's refusal to query the keyring index: the table lacks it or is still
    building it (a missing table's error does not name the index)."""
    # DynamoDB says ValidationException ("does not have the specified index", "Cannot read from
    # backfilling global secondary index"); moto says ResourceNotFoundException ("Invalid index").
    error = exc.response.get("Error", {})
    code = error.get("Code")
    return code in ("ValidationException", "ResourceNotFoundException") and INDEX in str(
        error.get("Message", "")
    )
