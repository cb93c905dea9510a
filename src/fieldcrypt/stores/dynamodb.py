"""Data keys in a DynamoDB table, so the key store replicates with a global table's data.

Table schema (made by :meth:`DynamoDBKeyStore.create_table`, documented in docs/dynamodb.md)::

    key_id      S   partition key: hex of the committing data key id
    keyring     S   owner keyring
    purpose     S   "encryption" | "blind_index"
    status      S   "active" | "retired" | "destroyed"
    created_at  S   ISO 8601 UTC with microseconds
    wraps       M   {master key id (KMS ARN or local:...): B wrapped data key}
    revision    N   increases on every update
    generation  N   orders a keyring's keys of one purpose (absent in 0.1 items)
    mac         B   HMAC-SHA256 authenticating the record (absent in 0.1 items; docs/format.md)
    GSI keyring-index: partition key keyring, every attribute projected

``put`` is a conditional put (``attribute_not_exists(key_id)``): on a global table two regions
may create keys at once, and their distinct random ids keep last-writer-wins from ever replacing
one key's row with another's. ``update`` is conditional on the revision read. ``list`` queries
the ``keyring-index`` GSI, so a keyring's refresh reads only its own records (with a keyring per
tenant, a table holds every tenant's: a scan read them all on each refresh). A GSI is eventually
consistent: a record another process wrote a moment ago may be missing for a moment (as it would
be until this process's next refresh anyway), while this process's own writes are always listed
(:mod:`fieldcrypt.stores.recent`). ``get`` stays a consistent read. A table made before the index
(fieldcrypt 0.3 and older) is listed by a consistent scan, with a warning, until
:meth:`DynamoDBKeyStore.upgrade_table` (``fieldcrypt keys upgrade``) adds it. An item that cannot
be read as a record is skipped and reported (``damaged``), never allowed to stop the keyring.

DynamoDB has no unique constraint across items, so two processes rotating at the same moment can
both take the next generation; the keyring then breaks the tie by key id, so every process still
agrees on one current key.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fieldcrypt.errors import ConfigurationError, FieldcryptError, KeyStoreConflict, KeyStoreUnavailable
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status
from fieldcrypt.stores import dynamodb_schema as schema
from fieldcrypt.stores.base import DamagedRow, DamagedRows, RowReports, damaged_row
from fieldcrypt.stores.recent import RecentWrites

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_TABLE = "fieldcrypt_keys"
log = logging.getLogger("fieldcrypt")


def dynamodb_client(region: str | None = None, endpoint_url: str | None = None) -> DynamoDBClient:
    """A low-level DynamoDB client with botocore's ``standard`` retries (not ``legacy``)."""
    config = Config(region_name=region, retries={"mode": "standard", "max_attempts": 8})
    return boto3.session.Session().client("dynamodb", config=config, endpoint_url=endpoint_url)


class DynamoDBKeyStore:
    """A :class:`~fieldcrypt.stores.KeyStore` in one DynamoDB table (default ``fieldcrypt_keys``).

    Args:
        table: the table name (create it once with :meth:`create_table`).
        client: a low-level DynamoDB client for the region this process runs in.
        region / endpoint_url: used to make a client when none is given.
    """

    def __init__(
        self,
        table: str = DEFAULT_TABLE,
        *,
        client: DynamoDBClient | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not table:
            raise ConfigurationError("the key-store table name must not be empty")
        self.table = table
        self.client = client if client is not None else dynamodb_client(region, endpoint_url)
        self._reports = RowReports()
        self._recent = RecentWrites()
        self._scan_until = 0.0  # monotonic time until which listings scan (no usable index)

    def create_table(self, *, wait: bool = True) -> None:
        """Create the table (on-demand billing) with its keyring index if it does not exist; an
        existing table without the index gets it (:meth:`upgrade_table`)."""
        try:
            self.client.create_table(**schema.new_table(self.table))
        except ClientError as exc:
            if _code(exc) != "ResourceInUseException":
                raise self._unavailable("CreateTable", exc) from exc
            self.upgrade_table(wait=wait)
            return
        if wait:
            self.client.get_waiter("table_exists").wait(TableName=self.table)

    def upgrade_table(self, *, wait: bool = True) -> bool:
        """Add the keyring index to a table made before it (idempotent); True when it was added.
        DynamoDB builds it online; until it is active, listings scan as before."""
        added = self._call("UpdateTable", lambda: schema.add_index(self.client, self.table, wait=wait))
        self._scan_until = 0.0
        return bool(added)

    def get(self, key_id: str) -> DataKeyRecord | None:
        item = self._call(
            "GetItem",
            lambda: self.client.get_item(TableName=self.table, Key=_key(key_id), ConsistentRead=True),
        ).get("Item")
        parsed = None if item is None else _parse(item)
        return parsed if isinstance(parsed, DataKeyRecord) else None

    def list(self, keyring: str, purpose: Purpose | None = None) -> list[DataKeyRecord]:
        # Names go through placeholders: several (status, for one) are DynamoDB reserved words.
        names = {"#keyring": "keyring", **({"#purpose": "purpose"} if purpose is not None else {})}
        values: dict[str, Any] = {":k": {"S": keyring}}
        params: dict[str, Any] = {"TableName": self.table, "ExpressionAttributeNames": names}
        if purpose is not None:
            values[":p"] = {"S": purpose.value}
            params["FilterExpression"] = "#purpose = :p"
        params["ExpressionAttributeValues"] = values
        items = None if time.monotonic() < self._scan_until else self._query(params)
        if items is None:  # a table without the index yet: a consistent scan, as before it
            condition = "#keyring = :k" + (" AND #purpose = :p" if purpose is not None else "")
            items = self._pages("Scan", params | {"FilterExpression": condition, "ConsistentRead": True})
        parsed = self._recent.merged(keyring, purpose, [_parse(item) for item in items])
        return self._reports.sort_out(keyring, parsed, every_purpose=purpose is None)

    def _query(self, params: dict[str, Any]) -> builtins.list[dict[str, Any]] | None:
        """The items of a keyring-index query; None when the table has no usable index yet."""
        query = params | {"IndexName": schema.INDEX, "KeyConditionExpression": "#keyring = :k"}
        try:
            return self._pages("Query", query)
        except FieldcryptError as exc:  # what _call made of DynamoDB's error, which is its cause
            if not isinstance(exc.__cause__, ClientError) or not schema.index_missing(exc.__cause__):
                raise
        # Warned once per interval, and the index looked for again after it: it may be building.
        self._scan_until = time.monotonic() + schema.RECHECK_SECONDS
        log.warning(
            "fieldcrypt: key-store table %r has no active %s index, so every keyring refresh scans "
            "the whole table: add it with `fieldcrypt keys upgrade` (DynamoDBKeyStore(%r).upgrade_table())",
            self.table,
            schema.INDEX,
            self.table,
        )
        return None

    def _pages(self, operation: str, params: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """Every item of a Query or Scan, page after page."""
        call = self.client.query if operation == "Query" else self.client.scan
        items: builtins.list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            page_params = params if start is None else params | {"ExclusiveStartKey": start}
            page = self._call(operation, lambda p=page_params: call(**p))  # type: ignore[misc]
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def keyring_names(self, prefix: str = "") -> builtins.list[str]:
        """The names of the keyrings with records here that start with ``prefix``, sorted (a
        scan of the table: for operations, not the request path)."""
        names: set[str] = set()
        start: dict[str, Any] | None = None
        while True:
            params: dict[str, Any] = {
                "TableName": self.table,
                "ProjectionExpression": "#keyring",
                "ExpressionAttributeNames": {"#keyring": "keyring"},
                "ConsistentRead": True,
            }
            if prefix:
                params["FilterExpression"] = "begins_with(#keyring, :prefix)"
                params["ExpressionAttributeValues"] = {":prefix": {"S": prefix}}
            if start is not None:
                params["ExclusiveStartKey"] = start
            page = self._call("Scan", lambda p=params: self.client.scan(**p))  # type: ignore[misc]
            names.update(
                item["keyring"]["S"] for item in page.get("Items", []) if "S" in item.get("keyring", {})
            )
            start = page.get("LastEvaluatedKey")
            if not start:
                return sorted(names)

    def damaged(self, keyring: str) -> DamagedRows:
        self.list(keyring)
        return self._reports.of(keyring)

    def put(self, record: DataKeyRecord) -> None:
        self._conditional_put(
            record, "attribute_not_exists(#key_id)", {"#key_id": "key_id"}, {}, "already exists"
        )
        self._recent.wrote(record)

    def update(self, record: DataKeyRecord) -> DataKeyRecord:
        stored = record.evolve(revision=record.revision + 1)
        read = {":read": {"N": str(record.revision)}}
        self._conditional_put(
            stored, "#revision = :read", {"#revision": "revision"}, read, "changed since it was read"
        )
        self._recent.wrote(stored)
        return stored

    def on_before_write_transaction(self, prepare: Callable[[], None]) -> None:
        """Nothing to do: DynamoDB shares no write lock with the application."""

    def _conditional_put(
        self,
        record: DataKeyRecord,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        conflict: str,
    ) -> None:
        params: dict[str, Any] = {
            "TableName": self.table,
            "Item": _item(record),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            params["ExpressionAttributeValues"] = values
        try:
            self.client.put_item(**params)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise KeyStoreConflict(f"data key {record.key_id} {conflict}") from exc
            raise self._unavailable("PutItem", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("PutItem", exc) from exc

    def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(operation, exc) from exc

    def _unavailable(self, operation: str, exc: Exception) -> FieldcryptError:
        code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        if code == "ResourceNotFoundException":
            return ConfigurationError(
                f"key-store table {self.table!r} does not exist in {self.client.meta.region_name}: "
                "create it with DynamoDBKeyStore(...).create_table() (or replicate it to this region)"
            )
        return KeyStoreUnavailable(
            f"key-store table {self.table!r}: DynamoDB {operation} failed ({code}); see the chained error"
        )

    def __repr__(self) -> str:
        return f"DynamoDBKeyStore({self.table!r}, region={self.client.meta.region_name!r})"


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _key(key_id: str) -> dict[str, Any]:
    return {"key_id": {"S": key_id}}


def _item(record: DataKeyRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "key_id": {"S": record.key_id},
        "keyring": {"S": record.keyring},
        "purpose": {"S": record.purpose.value},
        "status": {"S": record.status.value},
        "created_at": {"S": record.created_at.isoformat(timespec="microseconds")},
        "wraps": {"M": {master: {"B": wrapped} for master, wrapped in record.wraps.items()}},
        "revision": {"N": str(record.revision)},
    }
    if record.generation is not None:
        item["generation"] = {"N": str(record.generation)}
    if record.mac is not None:
        item["mac"] = {"B": record.mac}
    return item


def _parse(item: dict[str, Any]) -> DataKeyRecord | DamagedRow:
    """The item as a record, or what is wrong with it (one edited item must not stop a keyring)."""
    try:
        return _record(item)
    except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError) as exc:

        def text(name: str) -> str:
            value = item.get(name)
            return str(value.get("S", "?")) if isinstance(value, dict) else "?"

        return damaged_row(text("key_id"), text("keyring"), exc)


def _record(item: dict[str, Any]) -> DataKeyRecord:
    wraps = {master: bytes(value["B"]) for master, value in item["wraps"]["M"].items()}
    generation = item.get("generation")
    mac = item.get("mac")
    return DataKeyRecord(
        key_id=item["key_id"]["S"],
        keyring=item["keyring"]["S"],
        purpose=Purpose(item["purpose"]["S"]),
        status=Status(item["status"]["S"]),
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        wraps=wraps,
        revision=int(Decimal(item["revision"]["N"])),
        generation=None if generation is None else int(Decimal(generation["N"])),
        mac=None if mac is None else bytes(mac["B"]),
    )
