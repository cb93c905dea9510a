"""Per-attribute prepared paths (fieldcrypt.dynamodb.prepared) of PynamoDB models and the item
encryptor: kept per attribute, per table and per tenant keyring, and never opening one item's,
attribute's or tenant's value as another's once warm."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pynamodb.attributes import UnicodeAttribute

import fieldcrypt
from fieldcrypt import Place
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.errors import DecryptionError
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel

SSN = "123-45-6789"


class Patient(EncryptedModel):
    class Meta:
        table_name = "prepared_patients"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="prep")
    phone = EncryptedAttribute(UnicodeAttribute(), keyring="prep", null=True)
    ssn_bidx = BlindIndexAttribute(of="ssn")


class ArchivedPatient(Patient):
    """The same attribute objects on another table."""

    class Meta:
        table_name = "prepared_archive"


class Member(EncryptedModel):
    class Meta:
        table_name = "prepared_members"

    member_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="prep-tenants", tenant="tenant_id")
    ssn_bidx = BlindIndexAttribute(of="ssn")


def _keyring(name: str = "prep", **options: Any) -> fieldcrypt.Keyring:
    return fieldcrypt.Keyring(
        name, fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore(), **options
    )


@pytest.fixture
def keyring() -> Iterator[fieldcrypt.Keyring]:
    keyring = fieldcrypt.register(_keyring(), replace=True)
    yield keyring
    fieldcrypt.unregister("prep")


@pytest.fixture
def tenants() -> Iterator[tuple[fieldcrypt.TenantKeyrings, list[str]]]:
    """A registered tenant family on local master keys; the list records each supplier call."""
    calls: list[str] = []
    masters = {t: fieldcrypt.LocalMasterKey.generate() for t in ("acme", "globex", "initech")}

    def master_key_for(tenant: str) -> fieldcrypt.LocalMasterKey:
        calls.append(tenant)
        return masters[tenant]

    family = fieldcrypt.TenantKeyrings(
        "prep-tenants", key_store=fieldcrypt.MemoryKeyStore(), master_key_for=master_key_for, max_tenants=2
    )
    fieldcrypt.register(family, replace=True)
    yield family, calls
    fieldcrypt.unregister("prep-tenants")


def test_warm_values_open_only_for_their_own_item_attribute_and_table(keyring: fieldcrypt.Keyring) -> None:
    """Once every path is warm, a ciphertext moved to another item, attribute or table fails."""
    raw = Patient("p-1", ssn=SSN, phone="555").serialize()
    assert SSN.encode() not in raw["ssn"]["B"]
    assert b"555" not in raw["phone"]["B"]
    assert keyring.decrypt(raw["ssn"]["B"], Place("prepared_patients", "ssn", "p-1")) == SSN.encode()
    other = Patient("p-2", ssn="999-99-9999", phone="556").serialize()
    archived = ArchivedPatient("p-1", ssn=SSN, phone="555").serialize()
    for item in (raw, other):
        assert Patient.from_raw_data(item).ssn in (SSN, "999-99-9999")  # readers warm
    assert ArchivedPatient.from_raw_data(archived).phone == "555"
    for moved in (
        {**raw, "patient_id": {"S": "p-2"}},  # another item
        {**raw, "ssn": raw["phone"], "phone": raw["ssn"]},  # attributes swapped
    ):
        with pytest.raises(DecryptionError):
            Patient.from_raw_data(moved)
    with pytest.raises(DecryptionError):
        ArchivedPatient.from_raw_data(raw)  # another table, same attribute objects
    assert set(Patient.ssn._paths) == {"prepared_patients", "prepared_archive"}
    assert Patient.ssn._paths["prepared_patients"] is not Patient.phone._paths["prepared_patients"]


def test_tokens_are_per_table_and_match_the_uncached_path(keyring: fieldcrypt.Keyring) -> None:
    """The prepared indexer's token equals Keyring.blind_index at the attribute's place, per table."""
    token = Patient("p-1", ssn=SSN).serialize()["ssn_bidx"]["B"]
    archived = ArchivedPatient("p-1", ssn=SSN).serialize()["ssn_bidx"]["B"]
    assert token == keyring.blind_index(SSN, Place("prepared_patients", "ssn"))
    assert archived == keyring.blind_index(SSN, Place("prepared_archive", "ssn")) != token


def test_writes_follow_register_replace_and_go_through_a_counting_encrypt() -> None:
    """A replaced keyring takes the next write; a keyring whose encrypt is wrapped sees every value."""
    first = fieldcrypt.register(_keyring(), replace=True)
    try:
        raw = Patient("p-1", ssn=SSN).serialize()
        assert first.decrypt(raw["ssn"]["B"], Place("prepared_patients", "ssn", "p-1")) == SSN.encode()
        second = fieldcrypt.register(_keyring(), replace=True)
        raw = Patient("p-1", ssn=SSN).serialize()
        assert second.decrypt(raw["ssn"]["B"], Place("prepared_patients", "ssn", "p-1")) == SSN.encode()
        with pytest.raises(DecryptionError):
            first.decrypt(raw["ssn"]["B"], Place("prepared_patients", "ssn", "p-1"))
        counted: list[Place] = []
        encrypt = second.encrypt

        def counting(plaintext: bytes | str, place: Place) -> bytes:
            counted.append(place)
            return encrypt(plaintext, place)

        second.encrypt = counting  # type: ignore[method-assign]  # as fieldcrypt.metrics wraps it
        Patient("p-1", ssn=SSN, phone="555").serialize()
        assert sorted(p.column for p in counted) == ["phone", "ssn"]
        assert {p.row for p in counted} == {"p-1"}
    finally:
        fieldcrypt.unregister("prep")


def test_a_namespaced_keyring_binds_values_to_its_namespace() -> None:
    """The prepared place encoding carries the keyring's namespace, as Keyring.encrypt's does."""
    keyring = fieldcrypt.register(_keyring(namespace="tenant-a"), replace=True)
    try:
        raw = Patient("p-1", ssn=SSN).serialize()
        assert keyring.decrypt(raw["ssn"]["B"], Place("prepared_patients", "ssn", "p-1")) == SSN.encode()
        keyring.namespace, keyring._namespace = None, None  # the same keys without the namespace
        with pytest.raises(DecryptionError):
            keyring.decrypt(raw["ssn"]["B"], Place("prepared_patients", "ssn", "p-1"))
    finally:
        fieldcrypt.unregister("prep")


def test_per_tenant_attributes_never_open_another_tenants_value(
    tenants: tuple[fieldcrypt.TenantKeyrings, list[str]],
) -> None:
    """Warm for three tenants (more than are held), a value moved to another tenant's item fails."""
    family, _ = tenants
    raws = {t: Member("m-1", tenant_id=t, ssn=SSN).serialize() for t in ("acme", "globex", "initech")}
    for tenant, raw in raws.items():
        assert Member.from_raw_data(raw).ssn == SSN
        assert SSN.encode() not in raw["ssn"]["B"]
        place = Place("prepared_members", "ssn", "m-1")
        assert family.keyring_for(tenant).decrypt(raw["ssn"]["B"], place) == SSN.encode()
    assert raws["acme"]["ssn_bidx"] != raws["globex"]["ssn_bidx"]
    for tenant, other in (("acme", "globex"), ("globex", "initech"), ("initech", "acme")):
        with pytest.raises(DecryptionError):
            Member.from_raw_data({**raws[tenant], "tenant_id": {"S": other}})
    assert len(family.held_tenants()) == 2  # the family decides what is held


def test_a_forgotten_tenant_asks_the_supplier_again(
    tenants: tuple[fieldcrypt.TenantKeyrings, list[str]],
) -> None:
    """After TenantKeyrings.forget, the next write and read use the keyring the supplier makes anew."""
    family, calls = tenants
    raw = Member("m-1", tenant_id="acme", ssn=SSN).serialize()
    assert Member.from_raw_data(raw).ssn == SSN
    assert calls == ["acme"]
    old = family.keyring_for("acme")
    family.forget("acme")
    raw = Member("m-1", tenant_id="acme", ssn=SSN).serialize()
    assert calls == ["acme", "acme"]
    assert family.keyring_for("acme") is not old
    assert Member.from_raw_data(raw).ssn == SSN
    new, scratch = family.held_for("acme")
    assert len(scratch) == 2  # the reader's and the indexer's states, kept with the new keyring
    assert all(state[0] is new for state in scratch.values())  # nothing of the old one carries over


def test_item_encryptor_paths_are_per_attribute_and_per_tenant(
    keyring: fieldcrypt.Keyring, tenants: tuple[fieldcrypt.TenantKeyrings, list[str]]
) -> None:
    """The encryptor's warm paths refuse swapped attributes, moved items and another tenant's value."""
    family, _ = tenants
    encryptor = ItemEncryptor(
        table="prepared_items",
        key_attributes=["pk"],
        attributes={
            "ssn": EncryptedField("S", keyring="prep", searchable=True),
            "phone": EncryptedField("S", keyring="prep"),
            "note": EncryptedField("S", keyring="prep-tenants", tenant="tenant_id"),
        },
    )
    item = {
        "pk": {"S": "p-1"},
        "tenant_id": {"S": "acme"},
        "ssn": {"S": SSN},
        "phone": {"S": "555"},
        "note": {"S": "n"},
    }
    raw = encryptor.encrypt_item(item)
    assert encryptor.decrypt_item(raw) == item | {"ssn_bidx": raw["ssn_bidx"]}
    assert keyring.decrypt(raw["ssn"]["B"], Place("prepared_items", "ssn", "p-1")) == SSN.encode()
    assert raw["ssn_bidx"]["B"] == keyring.blind_index(SSN, Place("prepared_items", "ssn"))
    place = Place("prepared_items", "note", "p-1")
    assert family.keyring_for("acme").decrypt(raw["note"]["B"], place) == b"n"
    encryptor.decrypt_item(encryptor.encrypt_item(item | {"pk": {"S": "p-2"}, "tenant_id": {"S": "globex"}}))
    for moved in (
        raw | {"pk": {"S": "p-2"}},
        raw | {"ssn": raw["phone"], "phone": raw["ssn"]},
        raw | {"tenant_id": {"S": "globex"}},
    ):
        with pytest.raises(DecryptionError):
            encryptor.decrypt_item(moved)
