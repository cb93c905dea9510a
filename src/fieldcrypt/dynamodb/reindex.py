"""Rebuild one attribute's blind-index tokens under the newest index key (after a rotation).

After ``fieldcrypt keys rotate --purpose blind_index`` lookups query both keys' tokens; this job
rewrites each item's token under the new key, so that the old key can be retired (only once every
searchable attribute and column of the keyring has moved: :mod:`fieldcrypt.index_records`). Each
write is a conditional ``UpdateItem`` (set the token only if the value is still the one read), so
an item the application changed meanwhile is read again, never given a stale token. A run over
the whole table that leaves no item failed records that the attribute's tokens are all under the
new key.

A per-tenant attribute (``EncryptedField(..., tenant="tenant_id")``) is reindexed item by item
under the keyring of the tenant its tenant attribute names, each tenant's tokens under that
tenant's newest index key; ``tenant=`` limits a run to one tenant's items (docs/tenants.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from fieldcrypt import index_records, metrics
from fieldcrypt.dynamodb import tenancy
from fieldcrypt.dynamodb.item import ItemEncryptor
from fieldcrypt.dynamodb.tables import EncryptedColumn
from fieldcrypt.errors import ConfigurationError, DecryptionError, MissingTenant
from fieldcrypt.keys.record import Purpose
from fieldcrypt.place import Place
from fieldcrypt.tenant_rows import TenantRows

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
    tenant: Any = None,
) -> dict[str, int]:
    """Rewrite ``attribute``'s blind-index token of every item under the newest index key.

    ``encryptor`` describes the table as the application does (the field's keyring, kind and
    normalizer: the tokens must be the application's). A per-tenant field's tokens are made under
    each item's tenant's keyring; ``tenant`` (a per-tenant field only) reads and writes that
    tenant's items alone. Returns counts by outcome.

    Raises:
        ConfigurationError: not a searchable attribute, or its recorded index options differ;
            ``tenant`` for a field that is not per tenant.
    """
    job = _Job(client, encryptor, attribute, dry_run, tenant)
    counts: Counter[str] = Counter({name: 0 for name in COUNTS})
    for items, _ in job.column.pages(0, 1, None, batch_size):
        for item in items:
            counts["scanned"] += 1
            outcome = job.one(item, counts)
            counts[outcome] += 1
            if not dry_run:  # an item is a DynamoDB write or two: one instrument call is nothing beside it
                metrics.rows(
                    "reindex", encryptor.table, attribute, processed=1, failed=int(outcome == "failed")
                )
    if not dry_run and counts["failed"] == 0 and counts["conflicts_unresolved"] == 0 and job.key_id:
        index_records.reindexed(job.keyring, job.place, job.field.normalizer, job.key_id)
    return dict(counts)


class _Job:
    def __init__(
        self, client: DynamoDBClient, encryptor: ItemEncryptor, attribute: str, dry_run: bool, tenant: Any
    ) -> None:
        self.encryptor = encryptor
        self.attribute = attribute
        self.index = encryptor.index_attribute(attribute)  # refuses a non-searchable attribute
        self.field = encryptor.fields[attribute]
        self.place = Place(encryptor.table, attribute)
        self.dry_run = dry_run
        self.key_id = ""  # the one index key every token moves to ("" per tenant: one per tenant)
        rows = self._rows(tenant)
        # The tenant attribute is read with the value: it chooses the keyring of each item.
        also = (self.index,) if self.field.tenant is None else (self.index, self.field.tenant)
        self.column = EncryptedColumn(
            client, encryptor.table, attribute, encryptor.key_attributes, also, rows
        )
        if self.field.tenant is not None and tenant is None:
            return  # each item's keyring checks the recorded options before its first token
        self.keyring = self.field.keyring_for(tenant, f"reindex of {self.place.table}.{attribute}")
        index_records.record(self.keyring, self.place, self.field.normalizer)  # refuses other options
        if not dry_run:
            self.keyring.blind_index(b"", self.place)  # the first index key, if there is none yet
        if self.field.tenant is None:  # a tenant's keyring has no column-wide record to move
            self.key_id = self.keyring.chosen_key_id(Purpose.BLIND_INDEX) or ""

    def _rows(self, tenant: Any) -> TenantRows | None:
        """The scan filter of ``tenant``'s items (None: every item)."""
        if tenant is None:
            return None
        if self.field.tenant is None:
            raise ConfigurationError(
                f"{self.place.table}.{self.attribute} is not encrypted per tenant: drop tenant="
            )
        keyring = self.field.keyring_for(tenant, f"reindex of {self.place.table}.{self.attribute}")
        assert keyring.tenant is not None  # a TenantKeyrings' keyring names its tenant
        return TenantRows(self.field.tenant, keyring.tenant)

    def one(self, item: dict[str, Any] | None, counts: Counter[str]) -> str:
        for _ in range(MAX_RACES):
            stored = None if item is None else item.get(self.attribute)
            if item is None or stored is None:
                return "absent"
            try:
                tenant = self._tenant_of(item)
                plain = self.encryptor.decrypt_item(item)  # the projection: key, value, token, tenant
                token = self.encryptor.index_token(self.attribute, plain[self.attribute], tenant=tenant)
            except (DecryptionError, TypeError, ValueError, MissingTenant) as exc:
                log.warning("fieldcrypt: %s (token left unchanged)", exc)
                return "failed"
            if item.get(self.index) == {"B": token}:
                return "current"
            if self.dry_run or self._set(item, stored, token):
                return "reindexed"
            counts["conflicts"] += 1  # the application wrote meanwhile: read the item again
            item = self.column.read_item(item)
        return "conflicts_unresolved"

    def _tenant_of(self, item: dict[str, Any]) -> Any:
        """The item's tenant (None for a field not per tenant).

        Raises:
            MissingTenant: a per-tenant field's item without a usable tenant id: listed as failed,
                as an undecryptable item is, while the other items go on.
        """
        if self.field.tenant is None:
            return None
        where = f"{self.place.table}.{self.attribute} item {self.column.place(item).describe_row()}"
        try:
            tenant = tenancy.tenant_in(item, self.field.tenant, where)
        except ConfigurationError as exc:
            raise MissingTenant(str(exc)) from None
        if tenant is None:
            raise MissingTenant(f"{where} has no tenant attribute {self.field.tenant!r}")
        return tenant

    def _set(self, item: dict[str, Any], stored: dict[str, Any], token: bytes) -> bool:
        names = {"#i": self.index, "#a": self.attribute}
        given = {":token": {"B": token}, ":value": stored}
        return self.column.update_if(item, "SET #i = :token", "#a = :value", names, given)
