"""A shared DataKeyCache: keyrings never read through each other's keys; failed unwraps are
remembered briefly and boundedly (negative caching)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import fieldcrypt
from fieldcrypt import DataKeyCache, Keyring, Place
from fieldcrypt.keys.record import kms_context
from fieldcrypt.ratelimit import limited
from fieldcrypt.testing import CountingMasterKey
from test_cache import Clock

SSN = Place("users", "ssn")
NOTE = Place("users", "note")


def test_shared_cache_does_not_lend_a_key_to_another_master_key() -> None:
    """Same name and key store, another master key: the value is refused although its key is cached."""
    cache, store = DataKeyCache(), fieldcrypt.MemoryKeyStore()
    owner = Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store, cache=cache)
    stranger = Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store, cache=cache)
    blob = owner.encrypt("123-45-6789", SSN)
    assert len(cache) == 2  # the key (and the keyring's anchor) cached, under the owner's scope only
    with pytest.raises(fieldcrypt.KeyAccessError, match="is wrapped only under"):
        stranger.decrypt(blob, SSN)
    assert owner.decrypt(blob, SSN) == b"123-45-6789"


def test_shared_cache_does_not_lend_a_key_to_another_key_store() -> None:
    """Same name and master key, another key store: the value's key is unknown there, so it fails."""
    cache, master = DataKeyCache(), fieldcrypt.LocalMasterKey.generate()
    owner = Keyring("pii", master, fieldcrypt.MemoryKeyStore(), cache=cache)
    other = Keyring("pii", master, fieldcrypt.MemoryKeyStore(), cache=cache)
    blob = owner.encrypt("123-45-6789", SSN)
    with pytest.raises(fieldcrypt.DecryptionError):
        other.decrypt(blob, SSN)
    # Nor a blind-index key: the other keyring indexes under a key of its own store.
    assert owner.blind_index("123-45-6789", SSN) != other.blind_index("123-45-6789", SSN)


def test_shared_cache_does_not_lend_a_key_to_another_keyring_name() -> None:
    """Same master key and store, another keyring name: refused, as without a shared cache."""
    cache, store, master = DataKeyCache(), fieldcrypt.MemoryKeyStore(), fieldcrypt.LocalMasterKey.generate()
    pii = Keyring("pii", master, store, cache=cache)
    billing = Keyring("billing", master, store, cache=cache)
    with pytest.raises(fieldcrypt.DecryptionError):
        billing.decrypt(pii.encrypt("x", SSN), SSN)


def test_a_keyring_configured_alike_shares_the_cache() -> None:
    """The rate-limited copy the rotation engine makes (same name, store, master keys) unwraps nothing again."""
    counting = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    keyring = Keyring("pii", counting, fieldcrypt.MemoryKeyStore())
    blob = keyring.encrypt("x", SSN)
    calls = counting.total
    assert limited(keyring, 100.0).decrypt(blob, SSN) == b"x"
    assert counting.total == calls


def _unopenable(keyring: Keyring) -> bytes:
    """A value whose key-store row was edited so that its wrapped key no longer opens."""
    blob = keyring.encrypt("alice", SSN)
    record = keyring.key_store.get(keyring.key_id_of(blob))
    assert record is not None
    junk = keyring.master_key.wrap(bytes(range(32)), kms_context("other", record.key_id, record.purpose))
    keyring.key_store.update(record.evolve(wraps={keyring.master_key.key_id: junk}))
    keyring.cache.clear()
    return blob


def test_a_failed_unwrap_is_remembered_for_failure_ttl() -> None:
    """A hundred reads of an unopenable value cost one unwrap per failure_ttl, not a hundred."""
    clock = Clock()
    counting = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    cache = DataKeyCache(failure_ttl=timedelta(seconds=10), clock=clock)
    keyring = Keyring("pii", counting, fieldcrypt.MemoryKeyStore(), cache=cache)
    blob = _unopenable(keyring)
    before = counting.calls["unwrap"]
    for _ in range(100):
        with pytest.raises(fieldcrypt.DecryptionError):
            keyring.decrypt(blob, SSN)
    assert counting.calls["unwrap"] - before == 1
    clock.now = 10.0  # the failure is forgotten: KMS is asked again
    with pytest.raises(fieldcrypt.DecryptionError):
        keyring.decrypt(blob, SSN)
    assert counting.calls["unwrap"] - before == 2


def test_a_remembered_failure_names_the_place_being_read() -> None:
    """The error raised from memory names the table and column of this read, not of the first one."""
    keyring = Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    blob = _unopenable(keyring)
    with pytest.raises(fieldcrypt.DecryptionError, match=r"^cannot decrypt users\.ssn$"):
        keyring.decrypt(blob, SSN)
    with pytest.raises(fieldcrypt.DecryptionError, match=r"^cannot decrypt users\.note$"):
        keyring.decrypt(blob, NOTE)


def test_a_remembered_destroyed_key_still_says_destroyed() -> None:
    """A destroyed key's failure, remembered, is still KeyDestroyedError naming this read's place."""
    keyring = Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    blob = keyring.encrypt("x", SSN)
    record = keyring.key_store.get(keyring.key_id_of(blob))
    assert record is not None
    keyring.key_store.update(record.evolve(status=fieldcrypt.Status.DESTROYED, wraps={}))
    keyring.cache.clear()
    with pytest.raises(fieldcrypt.KeyDestroyedError, match=r"users\.ssn"):
        keyring.decrypt(blob, SSN)
    with pytest.raises(fieldcrypt.KeyDestroyedError, match=r"users\.note: data key .* was destroyed"):
        keyring.decrypt(blob, NOTE)


def test_remembered_failures_are_bounded() -> None:
    """Beyond max_failures the oldest remembered failure is forgotten (its next read loads again)."""
    cache = DataKeyCache(max_failures=2)
    loads: list[bytes] = []

    def failing(slot: bytes) -> object:
        loads.append(slot)
        raise fieldcrypt.DecryptionError()

    for slot in (b"a", b"b", b"c", b"b", b"c", b"a"):
        with pytest.raises(fieldcrypt.DecryptionError):
            cache.get(slot, lambda s=slot: failing(s))  # type: ignore[misc]
    assert loads == [b"a", b"b", b"c", b"a"]


def test_key_access_errors_are_not_remembered() -> None:
    """A KMS outage or throttling is not remembered: the next read asks KMS again."""
    cache = DataKeyCache()
    attempts: list[int] = []

    def unreachable() -> object:
        attempts.append(1)
        raise fieldcrypt.KeyAccessError("KMS unreachable")

    for _ in range(3):
        with pytest.raises(fieldcrypt.KeyAccessError):
            cache.get(b"k", unreachable)
    assert len(attempts) == 3


def test_evicting_forgets_a_remembered_failure() -> None:
    """After evict() (a key repaired or rewrapped here) the next read loads again at once."""
    cache = DataKeyCache()

    def failing() -> object:
        raise fieldcrypt.DecryptionError()

    with pytest.raises(fieldcrypt.DecryptionError):
        cache.get(b"k", failing)
    cache.evict(b"k")
    assert cache.get(b"k", lambda: "repaired") == "repaired"


@pytest.mark.parametrize("kwargs", [{"failure_ttl": timedelta(seconds=-1)}, {"max_failures": 0}])
def test_failure_bounds_are_validated(kwargs: dict[str, object]) -> None:
    """A negative failure_ttl or zero max_failures is refused at construction."""
    with pytest.raises(fieldcrypt.ConfigurationError, match="failure_ttl"):
        DataKeyCache(**kwargs)  # type: ignore[arg-type]


def test_scope_numbers_follow_the_identity_and_are_never_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same name, master keys and store: one number; any difference, or a forgotten identity, a new one."""
    from fieldcrypt import cache as cache_module

    cache, store = DataKeyCache(), fieldcrypt.MemoryKeyStore()
    first = cache.scope("pii", ("local:a",), store)
    assert cache.scope("pii", ("local:a",), store) == first
    others = {
        cache.scope("billing", ("local:a",), store),
        cache.scope("pii", ("local:b",), store),
        cache.scope("pii", ("local:a",), fieldcrypt.MemoryKeyStore()),
    }
    assert first not in others
    assert len(others) == 3
    monkeypatch.setattr(cache_module, "MAX_SCOPES", 1)
    forgotten = cache.scope("pii", ("local:c",), store)  # the table was full: every identity forgotten
    assert cache.scope("pii", ("local:a",), store) not in {first, forgotten, *others}
