"""DynamoDB reindex of a per-tenant searchable attribute (issue 14) on moto: each item's token
remade under its own tenant's keyring, ``tenant=`` touching one tenant's items only; three
tenants in one table, globex on its own KMS key."""

from __future__ import annotations

from typing import Any

import pytest
from tenant_helpers import BYOK, TENANTS
from tenant_models import Member, digits, members_encryptor

import fieldcrypt
from fieldcrypt import Place, Purpose
from fieldcrypt.dynamodb.reindex import reindex
from fieldcrypt.errors import ConfigurationError

SSNS = ("123-45-6789", "987-65-4321")  # every tenant holds both: equal values in each tenant


@pytest.fixture
def rotated(members: type[Member], tenant_keyrings: fieldcrypt.TenantKeyrings) -> dict[str, str]:
    """Two members per tenant with the same two SSNs, then every tenant's index key rotated;
    returns each tenant's new index key id."""
    for tenant in TENANTS:
        for i, ssn in enumerate(SSNS):
            members(f"{tenant}-{i}", tenant_id=tenant, ssn=ssn).save()
    new = {}
    for tenant in TENANTS:
        new[tenant] = tenant_keyrings.keyring_for(tenant).rotate(Purpose.BLIND_INDEX).key_id
    return new


def _raw(ddb: Any) -> dict[str, dict[str, Any]]:
    items = ddb.scan(TableName="members", ConsistentRead=True)["Items"]
    return {item["member_id"]["S"]: item for item in items}


def _expected_token(tenant_keyrings: fieldcrypt.TenantKeyrings, tenant: str, ssn: str) -> bytes:
    """The token under the tenant's newest index key (the keyring's blind_index)."""
    return tenant_keyrings.keyring_for(tenant).blind_index(digits(ssn).encode(), Place("members", "ssn"))


def _assert_lookups_stay_in_their_tenant(members: type[Member]) -> None:
    """Each tenant finds its own member for each SSN (dashes or not), never another tenant's."""
    for tenant in TENANTS:
        for i, ssn in enumerate(SSNS):
            for searched in (ssn, digits(ssn)):
                found = [(m.member_id, m.tenant_id) for m in members.lookup("ssn", searched, tenant=tenant)]
                assert found == [(f"{tenant}-{i}", tenant)]


def test_reindex_makes_each_items_token_under_its_own_tenants_new_key(
    rotated: dict[str, str],
    members: type[Member],
    ddb: Any,
    tenant_keyrings: fieldcrypt.TenantKeyrings,
) -> None:
    """After every tenant's index key rotated, one reindex run gives each item the token of its own tenant's newest key (equal SSNs, three tokens); values stay ciphertext, lookups stay in their tenant; an item without a tenant is listed failed while the others go on."""
    stray = _raw(ddb)["acme-0"] | {"member_id": {"S": "orphan"}}
    del stray["tenant_id"]  # a tenantless item: its keyring cannot be chosen
    ddb.put_item(TableName="members", Item=stray)
    counts = reindex(ddb, members_encryptor(), "ssn")
    assert (counts["scanned"], counts["reindexed"], counts["current"], counts["failed"]) == (7, 6, 0, 1)
    raw = _raw(ddb)
    assert raw["orphan"]["ssn_bidx"] == stray["ssn_bidx"]  # left as it was
    ddb.delete_item(TableName="members", Key={"member_id": {"S": "orphan"}})  # no model can read it
    for i, ssn in enumerate(SSNS):
        tokens = set()
        for tenant in TENANTS:
            item = raw[f"{tenant}-{i}"]
            assert ssn.encode() not in bytes(item["ssn"]["B"])
            assert digits(ssn).encode() not in bytes(item["ssn"]["B"])
            assert bytes(item["ssn_bidx"]["B"]) == _expected_token(tenant_keyrings, tenant, ssn)
            tokens.add(bytes(item["ssn_bidx"]["B"]))
        assert len(tokens) == 3  # one SSN, three tenants, three tokens
    for tenant, key_id in rotated.items():  # each tenant's newest key is the one just made
        keyring = tenant_keyrings.keyring_for(tenant)
        assert keyring.chosen_key_id(Purpose.BLIND_INDEX) == key_id
    _assert_lookups_stay_in_their_tenant(members)
    again = reindex(ddb, members_encryptor(), "ssn")
    assert (again["current"], again["reindexed"]) == (6, 0)  # a rerun writes nothing


def test_reindex_of_one_tenant_touches_only_its_items(
    rotated: dict[str, str],
    members: type[Member],
    ddb: Any,
    tenant_keyrings: fieldcrypt.TenantKeyrings,
) -> None:
    """reindex(tenant=globex), the BYOK tenant: its two items get its new key's tokens; every other item stays byte for byte, and the job writes only globex's items."""
    before = _raw(ddb)
    written: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        written.append(params["Key"]["member_id"]["S"])

    ddb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", record)
    counts = reindex(ddb, members_encryptor(), "ssn", tenant=BYOK)
    ddb.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", record)
    assert (counts["scanned"], counts["reindexed"], counts["failed"]) == (2, 2, 0)
    assert sorted(written) == [f"{BYOK}-0", f"{BYOK}-1"]
    after = _raw(ddb)
    for member_id, item in after.items():
        if item["tenant_id"]["S"] == BYOK:
            assert item["ssn_bidx"] != before[member_id]["ssn_bidx"]
            ssn = SSNS[int(member_id[-1])]
            assert bytes(item["ssn_bidx"]["B"]) == _expected_token(tenant_keyrings, BYOK, ssn)
        else:
            assert item == before[member_id]
    _assert_lookups_stay_in_their_tenant(members)  # the others still match through their old key


def test_reindex_tenant_needs_a_per_tenant_field(members: type[Member], ddb: Any) -> None:
    """tenant= on an attribute that is not per tenant is refused before any read."""
    from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor

    fieldcrypt.register(
        fieldcrypt.Keyring("plain-pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    )
    plain = ItemEncryptor(
        table="members",
        key_attributes=("member_id",),
        attributes={"ssn": EncryptedField("S", keyring="plain-pii", index_attribute="ssn_bidx")},
    )
    with pytest.raises(ConfigurationError, match="not encrypted per tenant: drop tenant="):
        reindex(ddb, plain, "ssn", tenant="acme")
