"""Rebuild one attribute's blind-index tokens under the newest index key (after a rotation).

After ``fieldcrypt keys rotate --purpose blind_index`` lookups query both keys' tokens; this job
rewrites each item's token under the new key, so that the old key can be retired (only once every
searchable attribute and column of the keyring has moved: :mod:`fieldcrypt.index_records`). Each
write is a conditional ``UpdateItem`` (set the token only if the value is still the one read), so
an item the application changed meanwhile is read again, never given a stale token. A run over
the whole table that leaves no item failed records that the attribute's tokens are all under the
new key.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from fieldcrypt import index_records, metrics
from fieldcrypt.dynamodb.item import ItemEncryptor
from fieldcrypt.errors import DecryptionError
from fieldcrypt.keys.record import Purpose
from fieldcrypt.place import Place

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger("fieldcrypt")
MAX_RACES = 5  # lost races per item before it is counted under "conflicts_unresolved"
COUNTS = ("scanned", "reindexed", "current", "absent", "failed", "conflicts", "conflicts_unresolved")


def reindex(
    client: DynamoDBClient,
    encryptor: ItemEncryptor,
    attribute: str,
    *,
    batch_size: int = 100,
    dry_run: bool = False,
) -> dict[str, int]:
    """Rewrite ``attribute``'s blind-index token of every item under the newest index key.

    ``encryptor`` describes the table as the application does (the field's keyring, kind and
    normalizer: the tokens must be the application's). Returns counts by outcome.

    Raises:
        ConfigurationError: not a searchable attribute, or its recorded index options differ.
    """
    job = _Job(client, encryptor, attribute, dry_run)
    counts: Counter[str] = Counter({name: 0 for name in COUNTS})
    for item in job.scan(batch_size):
        counts["scanned"] += 1
        outcome = job.one(item, counts)
        counts[outcome] += 1
        if not dry_run:  # an item is a DynamoDB write or two: one instrument call is nothing beside it
            metrics.rows("reindex", job.place.table, attribute, processed=1, failed=int(outcome == "failed"))
    if not dry_run and counts["failed"] == 0 and counts["conflicts_unresolved"] == 0 and job.key_id:
        index_records.reindexed(job.keyring, job.place, job.field.normalizer, job.key_id)
    return dict(counts)


class _Job:
    def __init__(
        self, client: DynamoDBClient, encryptor: ItemEncryptor, attribute: str, dry_run: bool
    ) -> None:
        self.client = client
        self.encryptor = encryptor
        self.attribute = attribute
        self.index = encryptor.index_attribute(attribute)  # refuses a non-searchable attribute
        self.field = encryptor.fields[attribute]
        self.keyring = self.field.resolve_keyring()
        self.place = Place(encryptor.table, attribute)
        self.dry_run = dry_run
        index_records.record(self.keyring, self.place, self.field.normalizer)  # refuses other options
        if not dry_run:
            self.keyring.blind_index(b"", self.place)  # the first index key, if there is none yet
        self.key_id = self.keyring.chosen_key_id(Purpose.BLIND_INDEX) or ""
        wanted = (*encryptor.key_attributes, attribute, self.index)
        self.names = {f"#n{i}": name for i, name in enumerate(wanted)}

    def scan(self, batch_size: int) -> Iterator[dict[str, Any]]:
        start: dict[str, Any] | None = None
        while True:
            params: dict[str, Any] = {
                "TableName": self.encryptor.table,
                "ProjectionExpression": ", ".join(self.names),
                "ExpressionAttributeNames": self.names,
                "Limit": batch_size,
            }
            if start:
                params["ExclusiveStartKey"] = start
            page = self.client.scan(**params)
            yield from page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def one(self, item: dict[str, Any], counts: Counter[str]) -> str:
        for _ in range(MAX_RACES):
            stored = item.get(self.attribute)
            if stored is None:
                return "absent"
            try:
                plain = self.encryptor.decrypt_item(
                    {k: item[k] for k in (*self.encryptor.key_attributes, self.attribute)}
                )
                token = self.encryptor.index_token(self.attribute, plain[self.attribute])
            except (DecryptionError, TypeError, ValueError) as exc:
                log.warning("fieldcrypt: %s (token left unchanged)", exc)
                return "failed"
            if item.get(self.index) == {"B": token}:
                return "current"
            if self.dry_run or self._set(item, stored, token):
                return "reindexed"
            counts["conflicts"] += 1  # the application wrote meanwhile: read the item again
            item = self._read(item)
        return "conflicts_unresolved"

    def _key(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.encryptor.key_attributes}

    def _set(self, item: dict[str, Any], stored: dict[str, Any], token: bytes) -> bool:
        try:
            self.client.update_item(
                TableName=self.encryptor.table,
                Key=self._key(item),
                UpdateExpression="SET #i = :token",
                ConditionExpression="#a = :value",
                ExpressionAttributeNames={"#i": self.index, "#a": self.attribute},
                ExpressionAttributeValues={":token": {"B": token}, ":value": stored},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _read(self, item: dict[str, Any]) -> dict[str, Any]:
        found = self.client.get_item(
            TableName=self.encryptor.table,
            Key=self._key(item),
            ConsistentRead=True,
            ProjectionExpression=", ".join(self.names),
            ExpressionAttributeNames=self.names,
        ).get("Item")
        return dict(found) if found else {}
