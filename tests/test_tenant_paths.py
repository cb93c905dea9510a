"""Per-column reads and tokens of per-tenant columns keep one prepared state per held tenant keyring."""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import Place, codecs, following, indexing, reading
from fieldcrypt.errors import ConfigurationError, DecryptionError, KeyDestroyedError
from fieldcrypt.sqlalchemy import Encrypted, blind_index, row_binding

COLUMN = Place("users", "ssn")
SSN = "123-45-6789"
SSN_BYTES = SSN.encode()


@pytest.fixture
def tenants() -> Iterator[fieldcrypt.TenantKeyrings]:
    """A registered TenantKeyrings "tp" holding at most three tenants, counting supplier calls."""
    master = fieldcrypt.LocalMasterKey.generate()
    calls: list[str] = []

    def supplier(tenant: str) -> fieldcrypt.LocalMasterKey:
        calls.append(tenant)
        return master

    family = fieldcrypt.TenantKeyrings(
        "tp", key_store=fieldcrypt.MemoryKeyStore(), master_key_for=supplier, max_tenants=3
    )
    family.calls = calls  # type: ignore[attr-defined]
    fieldcrypt.register(family, replace=True)
    yield family
    fieldcrypt.unregister("tp")


def _reader(**options: Any) -> Any:
    return reading.row_reader("tp", COLUMN, codecs.TextCodec(), row_bound=False, per_tenant=True, **options)


def _scratch(family: fieldcrypt.TenantKeyrings, tenant: str) -> dict[object, Any]:
    return family.held_for(tenant)[1]


def test_a_tenants_value_never_opens_under_another_tenants_prepared_state(
    tenants: fieldcrypt.TenantKeyrings,
) -> None:
    """With both tenants' reader states prepared, acme's value read as globex's fails, and each reads its own."""
    read = _reader()
    acme = tenants.keyring_for("acme").encrypt(SSN, COLUMN)
    globex = tenants.keyring_for("globex").encrypt("987-65-4321", COLUMN)
    for _ in range(2):  # the second round runs on the prepared states
        assert read(acme, None, "acme") == SSN
        assert read(globex, None, "globex") == "987-65-4321"
    (acme_state,) = _scratch(tenants, "acme").values()
    (globex_state,) = _scratch(tenants, "globex").values()
    assert acme_state[0] is tenants.keyring_for("acme")
    assert globex_state[0] is tenants.keyring_for("globex")
    assert set(acme_state[2]) == {acme[:21]}
    assert set(globex_state[2]) == {globex[:21]}
    for _ in range(2):
        with pytest.raises(DecryptionError):
            read(acme, None, "globex")
        with pytest.raises(DecryptionError):
            read(globex, None, "acme")
    assert SSN_BYTES not in acme


def test_prepared_tokens_are_each_tenants_own(tenants: fieldcrypt.TenantKeyrings) -> None:
    """A per-tenant indexer gives each tenant's keyring's blind_index token, different per tenant, on every call."""
    index = indexing.column_indexer("tp", COLUMN, None, per_tenant=True)
    expected = {t: tenants.keyring_for(t).blind_index(SSN_BYTES, COLUMN) for t in ("acme", "globex")}
    assert expected["acme"] != expected["globex"]
    for _ in range(3):
        assert {t: index(SSN_BYTES, t) for t in expected} == expected
    assert len(_scratch(tenants, "acme")) == len(_scratch(tenants, "globex")) == 1


def test_an_evicted_tenant_keyring_takes_its_prepared_states_along(
    tenants: fieldcrypt.TenantKeyrings,
) -> None:
    """Dropped from the LRU, a tenant's keyring and prepared states are released (nothing holds them) and remade on its next value."""
    read, index = _reader(), indexing.column_indexer("tp", COLUMN, None, per_tenant=True)
    blob = tenants.keyring_for("acme").encrypt(SSN, COLUMN)
    assert read(blob, None, "acme") == SSN
    token = index(SSN_BYTES, "acme")
    old = weakref.ref(tenants.keyring_for("acme"))
    assert len(_scratch(tenants, "acme")) == 2
    for other in ("b", "c", "d"):
        tenants.keyring_for(other)
    assert "acme" not in tenants.held_tenants()
    gc.collect()
    assert old() is None  # no reader, indexer or state kept the evicted keyring
    assert read(blob, None, "acme") == SSN
    assert index(SSN_BYTES, "acme") == token
    assert tenants.calls.count("acme") == 2  # type: ignore[attr-defined]
    assert len(_scratch(tenants, "acme")) == 2  # prepared again, for the new keyring


def test_a_forgotten_tenant_is_asked_again_and_its_states_released(
    tenants: fieldcrypt.TenantKeyrings,
) -> None:
    """TenantKeyrings.forget(t) drops t's prepared states with its keyring: the next read asks the supplier again."""
    read = _reader()
    blob = tenants.keyring_for("acme").encrypt(SSN, COLUMN)
    assert read(blob, None, "acme") == SSN
    old = weakref.ref(tenants.keyring_for("acme"))
    tenants.forget("acme")
    gc.collect()
    assert old() is None
    assert read(blob, None, "acme") == SSN
    assert tenants.calls.count("acme") == 2  # type: ignore[attr-defined]


def test_a_destroyed_tenant_data_key_is_not_used(tenants: fieldcrypt.TenantKeyrings) -> None:
    """A tenant's data key destroyed and forgotten is refused by the prepared reader, and the next sealed value takes a new key."""
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(40)),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="tp", tenant="tenant_id")),
    )
    type_ = table.c.ssn.type
    seal, read = row_binding.sealer(type_), row_binding.sealed_reader(type_)
    first = seal(SSN, None, "acme", None).blob
    assert read(first, None, "acme") == read(first, None, "acme") == SSN
    keyring = tenants.keyring_for("acme")
    (record,) = keyring.records(fieldcrypt.Purpose.ENCRYPTION)
    keyring.key_store.update(record.evolve(status=fieldcrypt.Status.DESTROYED, wraps={}))
    keyring.forget(record)
    with pytest.raises(KeyDestroyedError):
        read(first, None, "acme")
    second = seal(SSN, None, "acme", None).blob
    assert second[:21] != first[:21]
    assert SSN_BYTES not in second
    assert read(second, None, "acme") == SSN


def test_per_tenant_states_follow_a_replaced_family() -> None:
    """After register(replace=True) of another TenantKeyrings under the name, the reader and indexer use the new family only."""
    first = fieldcrypt.register(
        fieldcrypt.TenantKeyrings(
            "tq",
            key_store=fieldcrypt.MemoryKeyStore(),
            master_key_for=lambda t: fieldcrypt.LocalMasterKey.generate(),
        ),
        replace=True,
    )
    try:
        read = reading.row_reader("tq", COLUMN, codecs.TextCodec(), row_bound=False, per_tenant=True)
        index = indexing.column_indexer("tq", COLUMN, None, per_tenant=True)
        old_blob = first.keyring_for("acme").encrypt(SSN, COLUMN)
        assert read(old_blob, None, "acme") == SSN
        old_token = index(SSN_BYTES, "acme")
        second = fieldcrypt.register(
            fieldcrypt.TenantKeyrings(
                "tq",
                key_store=fieldcrypt.MemoryKeyStore(),
                master_key_for=lambda t: fieldcrypt.LocalMasterKey.generate(),
            ),
            replace=True,
        )
        with pytest.raises(DecryptionError):
            read(old_blob, None, "acme")
        assert read(second.keyring_for("acme").encrypt(SSN, COLUMN), None, "acme") == SSN
        new_token = index(SSN_BYTES, "acme")
        assert new_token != old_token
        assert new_token == second.keyring_for("acme").blind_index(SSN_BYTES, COLUMN)
    finally:
        fieldcrypt.unregister("tq")


def test_row_bound_per_tenant_reads_bind_the_row(tenants: fieldcrypt.TenantKeyrings) -> None:
    """A row-bound per-tenant reader opens a value at its own row only, under its own tenant only."""
    read = reading.row_reader("tp", COLUMN, codecs.TextCodec(), row_bound=True, per_tenant=True)
    blob = tenants.keyring_for("acme").encrypt(SSN, Place("users", "ssn", 7))
    for _ in range(2):
        assert read(blob, 7, "acme") == SSN
        with pytest.raises(DecryptionError) as caught:
            read(blob, 8, "acme")
        assert caught.value.row == "8"
        with pytest.raises(DecryptionError):
            read(blob, 7, "globex")


def test_a_scratch_keeps_a_bounded_number_of_states(tenants: fieldcrypt.TenantKeyrings) -> None:
    """Many readers of one tenant keyring (or many registry changes) never grow its scratch past the bound."""
    blob = tenants.keyring_for("acme").encrypt(SSN, COLUMN)
    readers = [_reader() for _ in range(following.MAX_STATES_PER_KEYRING + 5)]
    for read in readers:
        assert read(blob, None, "acme") == SSN
    assert len(_scratch(tenants, "acme")) <= following.MAX_STATES_PER_KEYRING


def test_a_row_without_its_tenant_is_refused_on_every_path(tenants: fieldcrypt.TenantKeyrings) -> None:
    """Sealing, indexing or opening a per-tenant column's value with tenant None raises ConfigurationError naming the column."""
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(40)),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="tp", tenant="tenant_id", searchable=True)),
    )
    type_ = table.c.ssn.type
    with pytest.raises(ConfigurationError, match=r"users\.ssn: its keyring is chosen by the row's tenant_id"):
        row_binding.seal(type_, SSN, None)
    with pytest.raises(ConfigurationError, match=r"users\.ssn: its keyring is chosen by the row's tenant_id"):
        blind_index.token(type_, SSN)
    sealed = row_binding.seal(type_, SSN, None, tenant="acme")
    with pytest.raises(ConfigurationError, match=r"users\.ssn: its keyring is chosen by the row's tenant_id"):
        row_binding.open_sealed(type_, sealed, None)


def test_counted_per_tenant_reads_are_all_counted(recorder: Any) -> None:
    """With metrics recording, every value a per-tenant reader opens counts under the family name."""
    from metrics_helpers import attrs

    name = f"m{uuid.uuid4().hex[:12]}"
    family = fieldcrypt.register(
        fieldcrypt.TenantKeyrings(
            name,
            key_store=fieldcrypt.MemoryKeyStore(),
            master_key_for=lambda t: fieldcrypt.LocalMasterKey.generate(),
        )
    )
    try:
        read = reading.row_reader(name, COLUMN, codecs.TextCodec(), row_bound=False, per_tenant=True)
        blob = family.keyring_for("acme").encrypt(SSN, COLUMN)
        before = recorder.collect()
        assert [read(blob, None, "acme") for _ in range(4)] == [SSN] * 4
        assert recorder.delta(before)["fieldcrypt.values.decrypted"] == {attrs(keyring=name): 4}
    finally:
        fieldcrypt.unregister(name)
