"""Column-index records in a DynamoDB key-store table.

An item ``{key_id: "ix:...", purpose: "column_index", index_keyring, record, revision}``: it has no
``keyring`` attribute, so the store's scan for a keyring's data keys never returns it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from fieldcrypt.stores.base import KeyStoreConflict
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore
from fieldcrypt.stores.indexes import PURPOSE, IndexRecord, record_id


class DynamoDBIndexRecords:
    def __init__(self, store: DynamoDBKeyStore) -> None:
        self.store = store

    def get(self, table: str, column: str) -> IndexRecord | None:
        client = self.store.client
        key = {"key_id": {"S": record_id(table, column)}}
        found = self.store._call(
            "GetItem", lambda: client.get_item(TableName=self.store.table, Key=key, ConsistentRead=True)
        ).get("Item")
        return None if found is None else _record(found)

    def list(self, keyring: str) -> list[IndexRecord]:
        client = self.store.client
        records: list[IndexRecord] = []
        start: dict[str, Any] | None = None
        while True:
            params: dict[str, Any] = {
                "TableName": self.store.table,
                "FilterExpression": "#p = :p AND #k = :k",
                "ExpressionAttributeNames": {"#p": "purpose", "#k": "index_keyring"},
                "ExpressionAttributeValues": {":p": {"S": PURPOSE}, ":k": {"S": keyring}},
                "ConsistentRead": True,
            }
            if start is not None:
                params["ExclusiveStartKey"] = start
            page = self.store._call("Scan", lambda p=params: client.scan(**p))  # type: ignore[misc]
            records.extend(_record(item) for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return records

    def put(self, record: IndexRecord) -> None:
        self._put(record, "attribute_not_exists(#id)", {"#id": "key_id"}, {})

    def update(self, record: IndexRecord) -> IndexRecord:
        stored = record.evolve(revision=record.revision + 1)
        self._put(stored, "#r = :read", {"#r": "revision"}, {":read": {"N": str(record.revision)}})
        return stored

    def _put(
        self, record: IndexRecord, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        params: dict[str, Any] = {
            "TableName": self.store.table,
            "Item": {
                "key_id": {"S": record.record_id},
                "purpose": {"S": PURPOSE},
                "index_keyring": {"S": record.keyring},
                "record": {"S": record.to_json()},
                "revision": {"N": str(record.revision)},
            },
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            params["ExpressionAttributeValues"] = values
        try:
            self.store.client.put_item(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise KeyStoreConflict(f"the index record of {record.table}.{record.column} changed") from exc
            raise self.store._unavailable("PutItem", exc) from exc


def _record(item: dict[str, Any]) -> IndexRecord:
    return IndexRecord.from_json(item["record"]["S"], int(Decimal(item["revision"]["N"])))
