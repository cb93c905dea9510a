"""Raw access to one encrypted attribute of a DynamoDB table, through the low-level client.

The re-encryption engine and ``status`` work on raw items, with no model class: this module
reads a table's key schema, pages through a parallel-scan segment, and gives each item's
``Place`` with the same row encoding as :class:`~fieldcrypt.pynamodb.EncryptedModel`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fieldcrypt.dynamodb import wire
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.place import Place
from fieldcrypt.tenant_rows import TenantRows

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


def parse_target(target: str) -> tuple[str, str]:
    """``dynamodb:patients.ssn`` (or ``patients.ssn``) -> ``("patients", "ssn")``.

    Table names may contain dots, attribute names rarely do: the attribute is after the last dot.
    """
    spec = target.removeprefix("dynamodb:")
    table, dot, attribute = spec.rpartition(".")
    if not dot or not attribute or not _TABLE_NAME.match(table):
        raise ConfigurationError(
            f"{target!r} is not a DynamoDB target: write dynamodb:TABLE.ATTRIBUTE, e.g. dynamodb:patients.ssn"
        )
    return table, attribute


def check_segment(segment: int, total: int) -> None:
    if not 1 <= total <= 1_000_000 or not 0 <= segment < total:
        raise ConfigurationError(
            f"segment {segment}/{total} is out of range: segments are numbered 0 to {total - 1} "
            "(DynamoDB's Segment/TotalSegments), and TotalSegments is 1 to 1000000"
        )


def key_names(client: DynamoDBClient, table: str) -> tuple[str, ...]:
    """The table's key attribute names in schema order (hash, then range), as values bind to them.

    Raises:
        ConfigurationError: the table does not exist in the client's region.
    """
    try:
        schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
    except client.exceptions.ResourceNotFoundException:
        region = client.meta.region_name
        raise ConfigurationError(f"DynamoDB table {table!r} does not exist in {region}") from None
    ordered = sorted(schema, key=lambda k: k["KeyType"] != "HASH")  # HASH first, then RANGE
    return tuple(k["AttributeName"] for k in ordered)


@dataclass(frozen=True)
class EncryptedColumn:
    """One attribute of one table, with the table's key attribute names in schema order.
    ``also``: further attributes read with it (a renamed attribute's old name, its blind index);
    ``tenant``: only the items of that tenant (a scan filter on its tenant attribute)."""

    client: DynamoDBClient
    table: str
    attribute: str
    key_names: tuple[str, ...]
    also: tuple[str, ...] = ()
    tenant: TenantRows | None = None

    @classmethod
    def open(
        cls,
        client: DynamoDBClient,
        table: str,
        attribute: str,
        also: tuple[str, ...] = (),
        tenant: TenantRows | None = None,
    ) -> EncryptedColumn:
        names = key_names(client, table)
        for name in (attribute, *also):
            if name in names:
                raise ConfigurationError(
                    f"{table}.{name} is a key attribute; key attributes are never encrypted"
                )
        if tenant is not None and tenant.column == attribute:  # ``also`` may read it (reindex does)
            raise ConfigurationError(
                f"{table}.{tenant.column} cannot be both encrypted and the tenant attribute"
            )
        return cls(client, table, attribute, names, also, tenant)

    def _projection(self, with_keys: bool) -> dict[str, str]:
        """ExpressionAttributeNames of what is read: the attribute, ``also`` and (scans) the key."""
        keys = {f"#k{i}": name for i, name in enumerate(self.key_names)} if with_keys else {}
        return keys | {"#a": self.attribute} | {f"#x{i}": name for i, name in enumerate(self.also)}

    def place(self, item: dict[str, Any]) -> Place:
        return Place(self.table, self.attribute, wire.row_key(item, self.key_names))

    def key(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.key_names}

    def pages(
        self, segment: int, total: int, start: dict[str, Any] | None, batch_size: int
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
        """Pages of (items, LastEvaluatedKey) of one segment, from ``start``; keys and attribute only."""
        names = self._projection(with_keys=True)
        while True:
            params: dict[str, Any] = {
                "TableName": self.table,
                "Segment": segment,
                "TotalSegments": total,
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
                "Limit": batch_size,
            }
            if self.tenant is not None:
                extra = self._tenant_filter()
                params["ExpressionAttributeNames"] = names | extra.pop("ExpressionAttributeNames")
                params.update(extra)
            if start:
                params["ExclusiveStartKey"] = start
            page = self.client.scan(**params)
            start = page.get("LastEvaluatedKey")
            yield page.get("Items", []), start
            if not start:
                return

    def _tenant_filter(self) -> dict[str, Any]:
        """Scan parameters keeping the tenant's items only: its id as a string, or as a number
        when it is one (a tenant attribute may be an S or an N)."""
        assert self.tenant is not None
        tenant = self.tenant.tenant
        values: dict[str, Any] = {":ts": {"S": tenant}}
        condition = "#t = :ts"
        if tenant.lstrip("-").isdigit():
            values[":tn"] = {"N": tenant}
            condition = "(#t = :ts OR #t = :tn)"
        return {
            "FilterExpression": condition,
            "ExpressionAttributeValues": values,
            "ExpressionAttributeNames": {"#t": self.tenant.column},
        }

    def read(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The attribute's current stored value (consistent read), or None if the item is gone."""
        found = self.read_item(item)
        return None if found is None else dict(found.get(self.attribute) or {}) or None

    def read_item(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The item's key, attribute and ``also`` as stored now (consistent read), or None if gone."""
        names = self._projection(with_keys=False)
        found = self.client.get_item(
            TableName=self.table,
            Key=self.key(item),
            ConsistentRead=True,
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
        ).get("Item")
        return None if found is None else self.key(item) | dict(found)

    def update_if(
        self, item: dict[str, Any], update: str, condition: str, names: dict[str, str], given: dict[str, Any]
    ) -> bool:
        """One ``UpdateItem`` of ``item`` (by its key) under ``condition``, which names what was
        read; False when it no longer holds (the application wrote meanwhile: look again). The
        jobs' only write, so every one of them is conditional.

        Raises:
            botocore.exceptions.ClientError: any other DynamoDB error.
        """
        params: dict[str, Any] = {
            "TableName": self.table,
            "Key": self.key(item),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if given:  # DynamoDB refuses an empty ExpressionAttributeValues
            params["ExpressionAttributeValues"] = given
        # Imported here: the item encryptor imports this module for key_names, and a boto3-only
        # reader that never runs a job should not load botocore.
        from botocore.exceptions import ClientError

        try:
            self.client.update_item(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
