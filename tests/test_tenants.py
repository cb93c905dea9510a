"""TenantKeyrings: a keyring per tenant, bound values, bounded and single-flight, the registry."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import Keyring, Place, TenantKeyrings, registry
from fieldcrypt import format as fmt
from fieldcrypt.errors import ConfigurationError, DecryptionError, KeyAccessError
from fieldcrypt.testing import CountingMasterKey

SSN = Place("users", "ssn", row=(1,))


def shared_key(**options: object) -> TenantKeyrings:
    """Tenant keyrings all under one local master key and one memory store."""
    master = fieldcrypt.LocalMasterKey.generate()
    return TenantKeyrings(
        "pii",
        key_store=fieldcrypt.MemoryKeyStore(),
        master_key_for=lambda tenant: master,
        **options,  # type: ignore[arg-type]
    )


class DeniedMasterKey:
    """A master key whose KMS refuses every call (a customer disabled their key)."""

    key_id = "arn:aws:kms:us-east-1:111122223333:key/disabled"

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        raise KeyAccessError("KMS: the key is disabled", master_key_id=self.key_id, code="DisabledException")

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        raise KeyAccessError("KMS: the key is disabled", master_key_id=self.key_id, code="DisabledException")

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return recorded_key_id == self.key_id


def test_each_tenant_has_its_own_named_keyring() -> None:
    """keyring_for gives one Keyring per tenant, named family/tenant, with .tenant, held and reused."""
    tenants = shared_key()
    acme = tenants.keyring_for("acme")
    assert isinstance(acme, Keyring)
    assert (acme.name, acme.tenant) == ("pii/acme", "acme")
    assert tenants.keyring_for("acme") is acme
    assert tenants.keyring_for("globex") is not acme
    assert (
        fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore()).tenant
        is None
    )


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (7, "7"),
        (-3, "-3"),
        ("7", "7"),
        (uuid.UUID("A1B2C3D4-0000-4000-8000-00000000000F"), "a1b2c3d4-0000-4000-8000-00000000000f"),
        ("acme.eu:1@x_y-z", "acme.eu:1@x_y-z"),
    ],
)
def test_tenant_ids_are_canonical(given: object, canonical: str) -> None:
    """ints are decimal, UUIDs lowercase hyphenated, strs as given: 7 and "7" share a keyring."""
    tenants = shared_key()
    keyring = tenants.keyring_for(given)  # type: ignore[arg-type]
    assert keyring.tenant == canonical
    assert keyring.name == f"pii/{canonical}"


@pytest.mark.parametrize("bad", [None, True, 1.5, b"acme", "", "a b", "a/b", "x" * 101, "ü", "a\x00"])
def test_unusable_tenant_ids_are_refused(bad: object) -> None:
    """None, bools, floats, bytes, empty, spaces, slashes, non-ASCII and over-long ids raise ConfigurationError."""
    tenants = shared_key()
    with pytest.raises(ConfigurationError, match="tenant id"):
        tenants.keyring_for(bad)  # type: ignore[arg-type]
    assert tenants.held_tenants() == []


def test_keyring_names_carry_a_valid_tenant_or_none() -> None:
    """Keyring("pii/acme") is tenant acme's; a malformed tenant part or a too-long name is refused."""
    master, store = fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore()
    assert Keyring("pii/acme", master, store).tenant == "acme"
    for bad in ("pii/", "/acme", "pii/a b", "pii/a/b", "p i/acme", "pii/" + "x" * 125):
        with pytest.raises(ConfigurationError, match="keyring name"):
            Keyring(bad, master, store)
    with pytest.raises(ConfigurationError, match="longer than 128"):
        TenantKeyrings("p" * 100, key_store=store, master_key_for=lambda t: master).keyring_for("x" * 40)


def test_a_value_moved_to_another_tenant_fails() -> None:
    """Under one shared master key, tenant B's keyring refuses tenant A's value (its data key is A's)."""
    tenants = shared_key()
    acme, globex = tenants.keyring_for("acme"), tenants.keyring_for("globex")
    blob = acme.encrypt("123-45-6789", SSN)
    assert b"123-45-6789" not in blob
    assert acme.decrypt_str(blob, SSN) == "123-45-6789"
    with pytest.raises(DecryptionError):
        globex.decrypt(blob, SSN)
    assert {r.keyring for r in tenants.key_store.list("pii/acme")} == {"pii/acme"}  # type: ignore[attr-defined]
    assert fmt.parse(blob).key_id.hex() not in {r.key_id for r in globex.records()}


def test_a_key_record_relabelled_to_another_tenant_does_not_open() -> None:
    """An attacker who edits A's key-store record to name B's keyring gets DecryptionError: the wrap
    is bound to A's keyring name in its encryption context."""
    tenants = shared_key()
    acme, globex = tenants.keyring_for("acme"), tenants.keyring_for("globex")
    blob = acme.encrypt("123-45-6789", SSN)
    globex.encrypt("x", SSN)
    record = tenants.key_store.get(Keyring.key_id_of(blob))
    assert record is not None
    tenants.key_store.update(record.evolve(keyring="pii/globex"))
    with pytest.raises(DecryptionError):
        globex.decrypt(blob, SSN)


def test_data_keys_are_wrapped_under_each_tenants_context() -> None:
    """Every wrap names the tenant's keyring in its encryption context (what KMS logs and IAM can check)."""
    seen: list[str] = []

    class Recording(CountingMasterKey):
        def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
            seen.append(context["fieldcrypt:keyring"])
            return super().wrap(data_key, context)

    master = Recording(fieldcrypt.LocalMasterKey.generate())
    tenants = TenantKeyrings("pii", key_store=fieldcrypt.MemoryKeyStore(), master_key_for=lambda t: master)
    tenants.keyring_for("acme").encrypt("x", SSN)
    tenants.keyring_for(42).blind_index("x", SSN)
    assert set(seen) == {"pii/acme", "pii/42"}


def test_equal_values_of_two_tenants_index_differently() -> None:
    """The same SSN under two tenants gives two blind-index tokens; within a tenant, one."""
    tenants = shared_key()
    column = Place("users", "ssn")
    acme, globex = tenants.keyring_for("acme"), tenants.keyring_for("globex")
    assert acme.blind_index("123-45-6789", column) != globex.blind_index("123-45-6789", column)
    assert acme.blind_index("123-45-6789", column) == acme.blind_index("123-45-6789", column)
    assert acme.blind_index_candidates("123-45-6789", column) == [acme.blind_index("123-45-6789", column)]


def test_per_tenant_master_keys() -> None:
    """A tenant on its own master key (BYOK): its keys are wrapped only under it, others' not."""
    own = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    shared = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    tenants = TenantKeyrings(
        "pii",
        key_store=fieldcrypt.MemoryKeyStore(),
        master_key_for=lambda t: own if t == "byok" else shared,
    )
    tenants.keyring_for("byok").encrypt("x", SSN)
    tenants.keyring_for("acme").encrypt("y", SSN)
    assert all(set(r.wraps) == {own.key_id} for r in tenants.keyring_for("byok").records())
    assert all(set(r.wraps) == {shared.key_id} for r in tenants.keyring_for("acme").records())


def test_a_failing_tenant_key_names_the_tenant_and_spares_the_others() -> None:
    """A tenant whose master key is refused raises KeyAccessError naming that tenant; others still work."""
    good = fieldcrypt.LocalMasterKey.generate()
    tenants = TenantKeyrings(
        "pii",
        key_store=fieldcrypt.MemoryKeyStore(),
        master_key_for=lambda t: DeniedMasterKey() if t == "initech" else good,
    )
    with pytest.raises(KeyAccessError, match="tenant 'initech'") as caught:
        tenants.keyring_for("initech").encrypt("123-45-6789", SSN)
    assert caught.value.tenant == "initech"
    assert caught.value.code == "DisabledException"
    assert "123-45-6789" not in str(caught.value)
    blob = tenants.keyring_for("acme").encrypt("x", SSN)
    assert tenants.keyring_for("acme").decrypt_str(blob, SSN) == "x"


def test_a_disabled_key_fails_that_tenants_reads_only() -> None:
    """Values written, then the tenant's key refused: its reads raise KeyAccessError naming it."""
    good = fieldcrypt.LocalMasterKey.generate()
    disabled: set[str] = set()

    class Switchable(CountingMasterKey):
        def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
            if context["fieldcrypt:keyring"].split("/")[1] in disabled:
                raise KeyAccessError("KMS: the key is disabled", code="DisabledException")
            return super().unwrap(wrapped, context)

    master = Switchable(good)
    store = fieldcrypt.MemoryKeyStore()
    writer = TenantKeyrings("pii", key_store=store, master_key_for=lambda t: master)
    blobs = {t: writer.keyring_for(t).encrypt(f"v-{t}", SSN) for t in ("acme", "globex", "initech")}
    disabled.add("initech")
    reader = TenantKeyrings("pii", key_store=store, master_key_for=lambda t: master)  # a cold process
    with pytest.raises(KeyAccessError, match="tenant 'initech'") as caught:
        reader.keyring_for("initech").decrypt(blobs["initech"], SSN)
    assert caught.value.tenant == "initech"
    for tenant in ("acme", "globex"):
        assert reader.keyring_for(tenant).decrypt_str(blobs[tenant], SSN) == f"v-{tenant}"


def test_held_keyrings_are_bounded_least_recently_used_first() -> None:
    """max_tenants bounds the held keyrings; the least recently used goes, and is remade on its next use."""
    calls: Counter[str] = Counter()
    master = fieldcrypt.LocalMasterKey.generate()

    def supplier(tenant: str) -> fieldcrypt.MasterKey:
        calls[tenant] += 1
        return master

    tenants = TenantKeyrings(
        "pii", key_store=fieldcrypt.MemoryKeyStore(), master_key_for=supplier, max_tenants=2
    )
    blob = tenants.keyring_for("a").encrypt("x", SSN)
    tenants.keyring_for("b")
    tenants.keyring_for("a")  # a is now the most recent
    tenants.keyring_for("c")
    assert tenants.held_tenants() == ["a", "c"]
    for n in range(50):
        tenants.keyring_for(f"t{n}")
    assert len(tenants.held_tenants()) == 2
    assert tenants.keyring_for("a").decrypt_str(blob, SSN) == "x"  # remade: reads its old values
    assert calls == {"a": 2, "b": 1, "c": 1, **{f"t{n}": 1 for n in range(50)}}


def test_one_supplier_call_per_tenant_under_concurrency() -> None:
    """Sixteen threads asking for one new tenant at once make one supplier call and share one keyring."""
    calls: Counter[str] = Counter()
    master = fieldcrypt.LocalMasterKey.generate()

    def slow_supplier(tenant: str) -> fieldcrypt.MasterKey:
        calls[tenant] += 1
        time.sleep(0.05)  # a KMS DescribeKey or a database lookup
        return master

    tenants = TenantKeyrings("pii", key_store=fieldcrypt.MemoryKeyStore(), master_key_for=slow_supplier)
    start = threading.Barrier(16)
    got: list[Keyring] = []

    def ask(tenant: str) -> None:
        start.wait()
        got.append(tenants.keyring_for(tenant))

    threads = [threading.Thread(target=ask, args=("acme" if i % 2 else 7,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == {"acme": 1, "7": 1}
    assert len({id(k) for k in got}) == 2


def test_a_supplier_failure_is_not_held() -> None:
    """A supplier that raises leaves nothing held: the next use asks again."""
    attempts: list[str] = []
    master = fieldcrypt.LocalMasterKey.generate()

    def flaky(tenant: str) -> fieldcrypt.MasterKey:
        attempts.append(tenant)
        if len(attempts) == 1:
            raise KeyAccessError("tenant directory unreachable")
        return master

    tenants = TenantKeyrings("pii", key_store=fieldcrypt.MemoryKeyStore(), master_key_for=flaky)
    with pytest.raises(KeyAccessError):
        tenants.keyring_for("acme")
    assert tenants.keyring_for("acme").tenant == "acme"
    assert attempts == ["acme", "acme"]


def test_the_supplier_must_return_master_keys() -> None:
    """A supplier returning something else is a ConfigurationError naming the tenant."""
    tenants = TenantKeyrings(
        "pii",
        key_store=fieldcrypt.MemoryKeyStore(),
        master_key_for=lambda t: "arn:aws:kms:...",  # type: ignore[arg-type, return-value]
    )
    with pytest.raises(ConfigurationError, match=r"master_key_for\('acme'\)"):
        tenants.keyring_for("acme")


def test_a_tenant_moving_to_a_new_key_reads_its_old_values() -> None:
    """The supplier may return (new key, old key): new values wrap under the new one, old ones still open."""
    old, new = fieldcrypt.LocalMasterKey.generate(), fieldcrypt.LocalMasterKey.generate()
    store = fieldcrypt.MemoryKeyStore()
    before = TenantKeyrings("pii", key_store=store, master_key_for=lambda t: old)
    blob = before.keyring_for("acme").encrypt("x", SSN)
    after = TenantKeyrings("pii", key_store=store, master_key_for=lambda t: (new, old))
    keyring = after.keyring_for("acme")
    assert keyring.master_keys == (new, old)
    assert keyring.decrypt_str(blob, SSN) == "x"


def test_options_are_checked_at_construction() -> None:
    """Bad keyring options, a fixed anchor_id, a bad family name or bound raise ConfigurationError at once."""
    store, master = fieldcrypt.MemoryKeyStore(), fieldcrypt.LocalMasterKey.generate()
    with pytest.raises(ConfigurationError, match="blind_index_bytes"):
        TenantKeyrings("pii", key_store=store, master_key_for=lambda t: master, blind_index_bytes=4)
    with pytest.raises(ConfigurationError, match="every tenant has its own"):
        TenantKeyrings("pii", key_store=store, master_key_for=lambda t: master, anchor_id="0" * 40)
    with pytest.raises(ConfigurationError, match="keyring name"):
        TenantKeyrings("pii/x", key_store=store, master_key_for=lambda t: master)
    with pytest.raises(ConfigurationError, match="max_tenants"):
        TenantKeyrings("pii", key_store=store, master_key_for=lambda t: master, max_tenants=0)
    with pytest.raises(ConfigurationError, match="key_store"):
        TenantKeyrings("pii", key_store=object(), master_key_for=lambda t: master)  # type: ignore[arg-type]


def test_anchor_ids_are_pinned_per_tenant() -> None:
    """anchor_id as a function pins each tenant's own anchor; a wrong pin refuses that tenant's writes."""
    store, master = fieldcrypt.MemoryKeyStore(), fieldcrypt.LocalMasterKey.generate()
    first = TenantKeyrings("pii", key_store=store, master_key_for=lambda t: master)
    first.keyring_for("acme").encrypt("x", SSN)
    pins = {"acme": first.keyring_for("acme").anchor_fingerprint(), "globex": "0" * 40}
    pinned = TenantKeyrings(
        "pii", key_store=store, master_key_for=lambda t: master, anchor_id=lambda t: pins.get(t)
    )
    assert pinned.keyring_for("acme").decrypt_str(pinned.keyring_for("acme").encrypt("y", SSN), SSN) == "y"
    first.keyring_for("globex").encrypt("x", SSN)
    with pytest.raises(fieldcrypt.errors.KeyStoreIntegrityError):
        pinned.keyring_for("globex").encrypt("z", SSN)


def test_tenants_share_one_bounded_cache_by_default() -> None:
    """Without a cache option every tenant's keyring uses the family's one DataKeyCache."""
    tenants = shared_key()
    assert tenants.keyring_for("a").cache is tenants.keyring_for("b").cache is tenants.cache


def test_stored_tenants_in_memory_and_sql(sqlite_engine: sa.Engine) -> None:
    """stored_tenants lists tenants with records in the store, not other families (LIKE wildcards escaped)."""
    master = fieldcrypt.LocalMasterKey.generate()
    sql_store = fieldcrypt.SqlKeyStore(sqlite_engine)
    sql_store.create_table()
    for store in (fieldcrypt.MemoryKeyStore(), sql_store):
        family = TenantKeyrings("p_i", key_store=store, master_key_for=lambda t: master)
        lookalike = TenantKeyrings("pxi", key_store=store, master_key_for=lambda t: master)
        for tenant in ("globex", 7, "acme"):
            family.keyring_for(tenant).encrypt("x", SSN)
        lookalike.keyring_for("other").encrypt("x", SSN)
        Keyring("p_i", master, store).encrypt("x", SSN)
        assert family.stored_tenants() == ["7", "acme", "globex"]
        assert lookalike.stored_tenants() == ["other"]


def test_registry_keeps_tenant_keyrings_apart() -> None:
    """register/get_tenant_keyrings; get_keyring on a per-tenant name says to name the tenant column."""
    tenants = fieldcrypt.register(shared_key())
    assert registry.get_tenant_keyrings("pii") is tenants
    with pytest.raises(ConfigurationError, match="must name its tenant column"):
        fieldcrypt.get_keyring("pii")
    with pytest.raises(ConfigurationError, match="already registered"):
        fieldcrypt.register(Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore()))
    plain = fieldcrypt.register(
        Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore()), replace=True
    )
    assert fieldcrypt.get_keyring("pii") is plain
    with pytest.raises(ConfigurationError, match="not per tenant"):
        registry.get_tenant_keyrings("pii")
    with pytest.raises(ConfigurationError, match="no keyring named 'other'"):
        registry.get_tenant_keyrings("other")


def test_follow_tenants_sees_a_replacement() -> None:
    """follow_tenants resolves again after register(..., replace=True)."""
    first = fieldcrypt.register(shared_key())
    current = registry.follow_tenants("pii")
    assert current() is first
    second = fieldcrypt.register(shared_key(), replace=True)
    assert current() is second


def test_reprs_show_no_keys() -> None:
    """The repr names the family and how many keyrings are held, nothing secret."""
    tenants = shared_key()
    tenants.keyring_for("acme")
    assert repr(tenants).startswith("TenantKeyrings('pii'")
    assert "held=1/1024" in repr(tenants)


def test_held_keyrings_stay_bounded_under_concurrent_churn() -> None:
    """Eight threads cycling through 64 tenants with max_tenants=8: no error, the bound holds, values read back."""
    tenants = shared_key(max_tenants=8)
    blobs = {t: tenants.keyring_for(f"t{t}").encrypt(f"v{t}", SSN) for t in range(64)}
    errors: list[BaseException] = []

    def churn(offset: int) -> None:
        try:
            for i in range(400):
                t = (i * 7 + offset) % 64
                assert tenants.keyring_for(f"t{t}").decrypt_str(blobs[t], SSN) == f"v{t}"
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(tenants.held_tenants()) <= 8
