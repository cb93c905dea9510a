"""PynamoDB and the boto3 item encryptor with per-tenant keyrings (issue 14) on moto DynamoDB:
three tenants in one table, globex on its own KMS key."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from pynamodb.attributes import UnicodeAttribute
from tenant_helpers import BYOK, TENANTS
from tenant_models import Member, members_encryptor

import fieldcrypt
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.errors import ConfigurationError, DecryptionError, KeyAccessError
from fieldcrypt.format import VERSION_1
from fieldcrypt.pynamodb import EncryptedAttribute, EncryptedModel

SSN = "123-45-6789"


def _save_one_per_tenant(model: type[Member]) -> None:
    for tenant in TENANTS:
        model(f"{tenant}-1", tenant_id=tenant, ssn=SSN, note=f"note of {tenant}").save()


def _raw(ddb: Any, member_id: str) -> dict[str, Any]:
    return dict(ddb.get_item(TableName="members", Key={"member_id": {"S": member_id}})["Item"])


def test_each_tenants_values_are_ciphertext_under_its_own_keys(
    members: type[Member], ddb: Any, tenant_keyrings: fieldcrypt.TenantKeyrings, kms_keys: dict[str, str]
) -> None:
    """Every stored value is v1 ciphertext naming a data key of its own tenant's keyring; globex's keys are wrapped only under its own KMS key."""
    _save_one_per_tenant(members)
    for tenant in TENANTS:
        raw = _raw(ddb, f"{tenant}-1")
        blob = bytes(raw["ssn"]["B"])
        assert blob[0] == VERSION_1
        assert SSN.encode() not in blob
        assert tenant.encode() not in blob
        keyring = tenant_keyrings.keyring_for(tenant)
        own = {r.key_id for r in keyring.records()}
        assert keyring.key_id_of(blob) in own
        assert members.get(f"{tenant}-1").ssn == SSN
    globex = tenant_keyrings.keyring_for(BYOK).records()
    assert globex
    assert all(set(r.wraps) == {kms_keys["globex"]} for r in globex)
    acme = tenant_keyrings.keyring_for("acme").records()
    assert acme
    assert all(set(r.wraps) == {kms_keys["shared"]} for r in acme)


def test_value_copied_into_another_tenants_item_does_not_decrypt(members: type[Member], ddb: Any) -> None:
    """An attacker with write access to the table copies acme's ciphertext into globex's item, or relabels acme's item as globex's: both reads fail."""
    _save_one_per_tenant(members)
    acme = _raw(ddb, "acme-1")
    globex = _raw(ddb, f"{BYOK}-1") | {"ssn": acme["ssn"]}
    ddb.put_item(TableName="members", Item=globex)
    with pytest.raises(DecryptionError):
        members.get(f"{BYOK}-1")
    relabelled = acme | {"tenant_id": {"S": "initech"}}  # same item key, same key store
    ddb.put_item(TableName="members", Item=relabelled)
    with pytest.raises(DecryptionError):
        members.get("acme-1")


def test_equal_values_of_two_tenants_have_different_tokens_and_lookup_stays_in_one_tenant(
    members: type[Member], ddb: Any
) -> None:
    """Three tenants store one SSN: three different blind-index tokens; lookup(tenant=) returns only that tenant's item."""
    _save_one_per_tenant(members)
    tokens = {bytes(_raw(ddb, f"{t}-1")["ssn_bidx"]["B"]) for t in TENANTS}
    assert len(tokens) == 3
    for tenant in TENANTS:
        found = list(members.lookup("ssn", "123456789" if tenant == "acme" else SSN, tenant=tenant))
        assert [(m.member_id, m.tenant_id) for m in found] == [(f"{tenant}-1", tenant)]
    with pytest.raises(ConfigurationError, match="within one tenant, pass tenant="):
        list(members.lookup("ssn", SSN))


def test_a_copied_token_never_returns_another_tenants_item(members: type[Member], ddb: Any) -> None:
    """globex's item carrying acme's token (copied by a table writer) is not returned by acme's lookup."""
    _save_one_per_tenant(members)
    acme = _raw(ddb, "acme-1")
    globex = _raw(ddb, f"{BYOK}-1") | {"ssn_bidx": acme["ssn_bidx"]}
    ddb.put_item(TableName="members", Item=globex)
    assert [m.member_id for m in members.lookup("ssn", SSN, tenant="acme")] == ["acme-1"]


def test_update_encrypts_under_the_items_tenant(
    members: type[Member], tenant_keyrings: Any, ddb: Any
) -> None:
    """Model.update(ssn.set(...)) writes ciphertext under the item's tenant's keyring and its token."""
    _save_one_per_tenant(members)
    item = members.get("initech-1")
    item.update(actions=[Member.ssn.set("999-99-9999")])
    blob = bytes(_raw(ddb, "initech-1")["ssn"]["B"])
    keyring = tenant_keyrings.keyring_for("initech")
    assert keyring.key_id_of(blob) in {r.key_id for r in keyring.records()}
    assert [m.member_id for m in members.lookup("ssn", "999999999", tenant="initech")] == ["initech-1"]
    assert list(members.lookup("ssn", "999999999", tenant="acme")) == []


def test_an_item_without_its_tenant_is_refused_before_any_write(members: type[Member], ddb: Any) -> None:
    """Saving an encrypted value with no tenant_id raises ConfigurationError and writes nothing."""
    with pytest.raises(ConfigurationError, match="no tenant attribute 'tenant_id'"):
        members("orphan", ssn=SSN).save()
    assert "Item" not in ddb.get_item(TableName="members", Key={"member_id": {"S": "orphan"}})


def test_one_tenants_disabled_key_fails_only_its_reads(
    members: type[Member],
    key_store: fieldcrypt.MemoryKeyStore,
    master_keys: dict[str, Any],
    kms_clients: dict[str, Any],
) -> None:
    """globex disables its own KMS key: its reads raise KeyAccessError naming globex; acme and initech read on."""
    _save_one_per_tenant(members)
    fresh = fieldcrypt.TenantKeyrings(
        "tenant-pii", key_store=key_store, master_key_for=master_keys.__getitem__
    )
    fieldcrypt.register(fresh, replace=True)  # a new process: nothing cached

    def disabled(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "DisabledException", "Message": "key is disabled"}}, "Decrypt")

    kms_clients[BYOK].meta.events.register("before-call.kms.Decrypt", disabled)
    with pytest.raises(KeyAccessError, match=BYOK) as caught:
        members.get(f"{BYOK}-1")
    assert not isinstance(caught.value, DecryptionError)
    assert members.get("acme-1").ssn == SSN
    assert members.get("initech-1").note == "note of initech"
    kms_clients[BYOK].meta.events.unregister("before-call.kms.Decrypt", disabled)
    assert members.get(f"{BYOK}-1").ssn == SSN


def test_item_encryptor_and_model_read_each_others_tenant_items(
    members: type[Member], ddb: Any, tenant_keyrings: Any
) -> None:
    """A raw boto3 item encrypted per tenant reads through the model, and the model's through the encryptor."""
    encryptor = members_encryptor()
    item = {"member_id": {"S": "raw-1"}, "tenant_id": {"S": BYOK}, "ssn": {"S": SSN}, "note": {"S": "n"}}
    stored = encryptor.encrypt_item(item)
    keyring = tenant_keyrings.keyring_for(BYOK)
    assert keyring.key_id_of(bytes(stored["ssn"]["B"])) in {r.key_id for r in keyring.records()}
    ddb.put_item(TableName="members", Item=stored)
    assert members.get("raw-1").ssn == SSN
    members("model-1", tenant_id="acme", ssn=SSN).save()
    assert encryptor.decrypt_item(_raw(ddb, "model-1"))["ssn"] == {"S": SSN}
    assert encryptor.search_tokens("ssn", {"S": SSN}, tenant=BYOK) == [bytes(stored["ssn_bidx"]["B"])]


def test_item_encryptor_search_is_per_tenant_and_moved_values_fail(members: type[Member], ddb: Any) -> None:
    """search_tokens differ per tenant, verified() drops another tenant's item, and a value moved across tenants fails."""
    encryptor = members_encryptor()
    items = [
        encryptor.encrypt_item({"member_id": {"S": f"{t}-9"}, "tenant_id": {"S": t}, "ssn": {"S": SSN}})
        for t in TENANTS
    ]
    tokens = [encryptor.search_tokens("ssn", {"S": SSN}, tenant=t) for t in TENANTS]
    assert len({t[0] for t in tokens}) == 3
    assert [i["member_id"] for i in encryptor.verified("ssn", {"S": SSN}, items, tenant="acme")] == [
        {"S": "acme-9"}
    ]
    moved = dict(items[1]) | {"ssn": items[0]["ssn"]}  # acme's value in globex's item
    with pytest.raises(DecryptionError):
        encryptor.decrypt_item(moved)
    with pytest.raises(ConfigurationError, match="pass tenant="):
        encryptor.search_tokens("ssn", {"S": SSN})


def test_declarations_that_cannot_choose_a_keyring_are_refused(local_keyring: fieldcrypt.Keyring) -> None:
    """tenant= naming a missing or encrypted attribute, or beside a single Keyring, fails at declaration."""
    with pytest.raises(ConfigurationError, match="must name a UnicodeAttribute or NumberAttribute"):

        class Missing(EncryptedModel):
            class Meta:
                table_name = "missing"

            member_id = UnicodeAttribute(hash_key=True)
            ssn = EncryptedAttribute(UnicodeAttribute(), keyring="tenant-pii", tenant="tenant_id")

    with pytest.raises(ConfigurationError, match="registered TenantKeyrings"):
        EncryptedAttribute(UnicodeAttribute(), keyring=local_keyring, tenant="tenant_id")
    with pytest.raises(ConfigurationError, match="is encrypted; the tenant id must be stored in clear"):
        ItemEncryptor(
            table="t",
            key_attributes=("id",),
            attributes={
                "ssn": EncryptedField("S", keyring="tenant-pii", tenant="org"),
                "org": EncryptedField("S", keyring="pii"),
            },
        )
