"""Keyring: round trips, tampering, places, key-store attacks, rotation, sharing between processes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import Keyring, Place
from fieldcrypt import format as fmt
from fieldcrypt.keys.record import kms_context
from fieldcrypt.testing import CountingMasterKey

SSN_PLACE = Place("users", "ssn")


def sql_keyring(engine: sa.Engine, master: fieldcrypt.MasterKey | None = None, **options: object) -> Keyring:
    store = fieldcrypt.SqlKeyStore(engine)
    store.create_table()
    return Keyring("pii", master or fieldcrypt.LocalMasterKey.generate(), store, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1, 11, 255, 4096, 65_537, 1_000_000])
def test_round_trip_sizes_memory(local_keyring: Keyring, size: int) -> None:
    """Bytes of every size from 0 to 1 MB come back unchanged."""
    value = bytes(i % 251 for i in range(size))
    blob = local_keyring.encrypt(value, SSN_PLACE)
    assert len(blob) == size + fmt.OVERHEAD
    assert local_keyring.decrypt(blob, SSN_PLACE) == value


def test_round_trip_through_each_sql_key_store(engine: sa.Engine) -> None:
    """Through SqlKeyStore on SQLite, PostgreSQL and MariaDB, str and bytes round-trip from a new keyring."""
    master = fieldcrypt.LocalMasterKey.generate()
    writer = sql_keyring(engine, master)
    values = ["", "123-45-6789", "Zoë 🧬 診断", "x" * 100_000]
    blobs = [writer.encrypt(v, SSN_PLACE) for v in values] + [
        writer.encrypt(b"\x00\xff" * 500_000, SSN_PLACE)
    ]
    reader = Keyring("pii", master, fieldcrypt.SqlKeyStore(engine))  # another process, same store
    assert [reader.decrypt_str(b, SSN_PLACE) for b in blobs[:-1]] == values
    assert reader.decrypt(blobs[-1], SSN_PLACE) == b"\x00\xff" * 500_000
    assert len(reader.records(fieldcrypt.Purpose.ENCRYPTION)) == 1


def test_every_flipped_byte_raises_the_opaque_error(local_keyring: Keyring) -> None:
    """Flipping any single byte of a stored value raises DecryptionError, never garbage."""
    blob = local_keyring.encrypt("123-45-6789", SSN_PLACE)
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(fieldcrypt.DecryptionError) as caught:
            local_keyring.decrypt(bytes(tampered), SSN_PLACE)
        assert "123-45-6789" not in str(caught.value)
    for cut in (0, 1, 20, 44):
        with pytest.raises(fieldcrypt.DecryptionError):
            local_keyring.decrypt(blob[:cut], SSN_PLACE)


def test_error_names_place_and_row_but_not_reason(local_keyring: Keyring) -> None:
    """The opaque error says where (table, column, row) and nothing about why."""
    place = Place("users", "ssn", row=42)
    blob = local_keyring.encrypt("123-45-6789", place)
    with pytest.raises(fieldcrypt.DecryptionError) as caught:
        local_keyring.decrypt(blob, Place("users", "ssn", row=43))
    assert str(caught.value) == "cannot decrypt users.ssn (row 43)"
    assert (caught.value.table, caught.value.column, caught.value.row) == ("users", "ssn", "43")


@pytest.mark.parametrize(
    "other",
    [
        Place("users", "tax_id"),
        Place("staff", "ssn"),
        Place("users", "ssn", row=1),
        Place("users", "ssn", row="7"),
    ],
)
def test_value_moved_to_another_place_fails(local_keyring: Keyring, other: Place) -> None:
    """A ciphertext copied to another column, table or row does not decrypt."""
    blob = local_keyring.encrypt(
        "123-45-6789", Place("users", "ssn", row=7) if other.row is None else SSN_PLACE
    )
    with pytest.raises(fieldcrypt.DecryptionError):
        local_keyring.decrypt(blob, other)


def test_unknown_version_is_unsupported_format(local_keyring: Keyring) -> None:
    """A future version byte raises UnsupportedFormatError, itself a DecryptionError."""
    blob = bytearray(local_keyring.encrypt("x", SSN_PLACE))
    blob[0] = 2
    with pytest.raises(fieldcrypt.UnsupportedFormatError, match="format version 2 is not supported"):
        local_keyring.decrypt(bytes(blob), SSN_PLACE)


def test_swapped_key_store_rows_fail_to_unwrap(local_keyring: Keyring) -> None:
    """Key-store row A's wrapped key filed under B's id does not unwrap (context names the id)."""
    store = local_keyring.key_store
    blob_a = local_keyring.encrypt("alice", SSN_PLACE)
    record_a = store.get(local_keyring.key_id_of(blob_a))
    record_b = local_keyring.rotate()
    blob_b = local_keyring.encrypt("bob", SSN_PLACE)
    assert record_a is not None
    assert local_keyring.key_id_of(blob_b) == record_b.key_id
    store.update(record_b.evolve(wraps=record_a.wraps))
    local_keyring.cache.clear()
    with pytest.raises(fieldcrypt.DecryptionError):
        local_keyring.decrypt(blob_b, SSN_PLACE)


def test_key_commitment_refuses_a_forged_key_under_a_real_id(local_keyring: Keyring) -> None:
    """Someone who can write key-store rows *and* wrap keys cannot substitute another data key."""
    blob = local_keyring.encrypt("alice", SSN_PLACE)
    key_id = local_keyring.key_id_of(blob)
    record = local_keyring.key_store.get(key_id)
    assert record is not None
    forged_key = bytes(32 * [7])
    # A perfectly valid wrap, under the right context, of the wrong key.
    forged = local_keyring.master_key.wrap(forged_key, kms_context("pii", key_id, record.purpose))
    local_keyring.key_store.update(record.evolve(wraps={local_keyring.master_key.key_id: forged}))
    local_keyring.cache.clear()
    with pytest.raises(fieldcrypt.DecryptionError):
        local_keyring.decrypt(blob, SSN_PLACE)


def test_other_keyrings_values_are_refused() -> None:
    """A value of keyring "pii" does not decrypt through keyring "billing", even on a shared store."""
    store = fieldcrypt.MemoryKeyStore()
    master = fieldcrypt.LocalMasterKey.generate()
    pii, billing = Keyring("pii", master, store), Keyring("billing", master, store)
    with pytest.raises(fieldcrypt.DecryptionError):
        billing.decrypt(pii.encrypt("x", SSN_PLACE), SSN_PLACE)


def test_destroyed_key_raises_key_destroyed(local_keyring: Keyring) -> None:
    """After crypto-shredding a data key, its values raise KeyDestroyedError."""
    blob = local_keyring.encrypt("x", SSN_PLACE)
    record = local_keyring.key_store.get(local_keyring.key_id_of(blob))
    assert record is not None
    local_keyring.key_store.update(record.evolve(status=fieldcrypt.Status.DESTROYED, wraps={}))
    local_keyring.cache.clear()
    with pytest.raises(fieldcrypt.KeyDestroyedError, match="was destroyed"):
        local_keyring.decrypt(blob, SSN_PLACE)


def test_wrong_master_key_is_a_key_access_error() -> None:
    """A keyring whose master keys never wrapped the data key says which keys it would need."""
    store = fieldcrypt.MemoryKeyStore()
    blob = Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store).encrypt("x", SSN_PLACE)
    stranger = Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)
    with pytest.raises(fieldcrypt.KeyAccessError, match="is wrapped only under"):
        stranger.decrypt(blob, SSN_PLACE)


def test_rotation_by_age_makes_a_new_key_and_old_values_still_decrypt() -> None:
    """Past rotate_after, new values use a new data key; old ones keep decrypting."""
    keyring = fieldcrypt.testing.local_keyring(
        rotate_after=timedelta(microseconds=1), refresh_every=timedelta(microseconds=1)
    )
    first = keyring.encrypt("a", SSN_PLACE)
    second = keyring.encrypt("b", SSN_PLACE)
    assert keyring.key_id_of(first) != keyring.key_id_of(second)
    assert [keyring.decrypt_str(b, SSN_PLACE) for b in (first, second)] == ["a", "b"]


def test_rotation_by_count_bounds_encryptions_per_key() -> None:
    """After rotate_after_encryptions values, this process moves to a new data key."""
    keyring = fieldcrypt.testing.local_keyring(rotate_after_encryptions=10)
    ids = [keyring.key_id_of(keyring.encrypt("v", SSN_PLACE)) for _ in range(35)]
    counts = [ids.count(i) for i in dict.fromkeys(ids)]
    assert len(counts) >= 4
    assert max(counts) <= 10


def test_processes_share_the_newest_key(sqlite_engine: sa.Engine) -> None:
    """A second process picks up the key the first one made; after a rotation, the new one."""
    master = fieldcrypt.LocalMasterKey.generate()
    one = sql_keyring(sqlite_engine, master, refresh_every=timedelta(microseconds=1))
    two = Keyring(
        "pii", master, fieldcrypt.SqlKeyStore(sqlite_engine), refresh_every=timedelta(microseconds=1)
    )
    assert one.current_key_id() == two.current_key_id()
    rotated = one.rotate()
    assert two.key_id_of(two.encrypt("x", SSN_PLACE)) == rotated.key_id


def test_concurrent_first_use_by_many_processes_is_safe(engine: sa.Engine) -> None:
    """Eight keyrings (stand-ins for processes) encrypting at once on an empty store all succeed."""
    master = fieldcrypt.LocalMasterKey.generate()
    sql_keyring(engine, master)
    keyrings = [Keyring("pii", master, fieldcrypt.SqlKeyStore(engine)) for _ in range(8)]
    blobs: list[bytes] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(k: Keyring) -> None:
        try:
            barrier.wait()
            blobs.append(k.encrypt("v", SSN_PLACE))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in keyrings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(keyrings[0].decrypt(b, SSN_PLACE) == b"v" for b in blobs)
    assert 1 <= len(keyrings[0].records()) <= 8


def test_one_unwrap_serves_many_values_and_threads() -> None:
    """A cold reader decrypting from 8 threads at once unwraps the data key exactly once."""
    master = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    store = fieldcrypt.MemoryKeyStore()
    writer = Keyring("pii", master, store)
    blobs = [writer.encrypt(str(i), SSN_PLACE) for i in range(200)]
    assert master.calls == {"wrap": 2}  # the keyring's anchor (made on first use) and the data key
    reader = Keyring("pii", master, store)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for b in blobs:
            reader.decrypt(b, SSN_PLACE)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert master.calls == {"wrap": 2, "unwrap": 1}  # a reader never needs the anchor


def test_blind_index_is_deterministic_per_column_and_keyed(local_keyring: Keyring) -> None:
    """Equal values give equal tokens in one column, different tokens in another column or keyring."""
    a = local_keyring.blind_index("123-45-6789", Place("users", "ssn", row=1))
    b = local_keyring.blind_index("123-45-6789", Place("users", "ssn", row=2))
    assert a == b
    assert len(a) == 16
    assert local_keyring.blind_index("123-45-6789", Place("users", "tax_id")) != a
    assert local_keyring.blind_index_candidates("123-45-6789", SSN_PLACE) == [a]
    other = fieldcrypt.testing.local_keyring("other")
    assert other.blind_index("123-45-6789", SSN_PLACE) != a


def test_blind_index_queries_never_create_keys() -> None:
    """Querying before any write finds no candidates and writes nothing to the key store."""
    keyring = fieldcrypt.testing.local_keyring()
    assert keyring.blind_index_candidates("x", SSN_PLACE) == []
    assert keyring.records() == []


def test_decrypting_never_writes_to_the_key_store(local_keyring: Keyring) -> None:
    """Reads on a read-only replica must not write: decrypt makes no put or update."""
    blob = local_keyring.encrypt("x", SSN_PLACE)
    store = local_keyring.key_store

    class ReadOnly(fieldcrypt.MemoryKeyStore):
        def put(self, record: fieldcrypt.DataKeyRecord) -> None:
            raise AssertionError("read path wrote a key")

        def update(self, record: fieldcrypt.DataKeyRecord) -> fieldcrypt.DataKeyRecord:
            raise AssertionError("read path updated a key")

    replica = ReadOnly()
    for record in store.list("pii"):
        fieldcrypt.MemoryKeyStore.put(replica, record)
    reader = Keyring("pii", local_keyring.master_key, replica)
    assert reader.decrypt(blob, SSN_PLACE) == b"x"


def test_bad_configuration_fails_at_construction() -> None:
    """Invalid names, bounds and key objects are refused when the keyring is built."""
    master, store = fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore()
    with pytest.raises(fieldcrypt.ConfigurationError, match="keyring name"):
        Keyring("p i i", master, store)
    with pytest.raises(fieldcrypt.ConfigurationError, match="blind_index_bytes"):
        Keyring("pii", master, store, blind_index_bytes=4)
    with pytest.raises(fieldcrypt.ConfigurationError, match="master_key must be"):
        Keyring("pii", "secret", store)  # type: ignore[arg-type]
    with pytest.raises(fieldcrypt.ConfigurationError, match="32 bytes"):
        fieldcrypt.LocalMasterKey(b"short")
    with pytest.raises(fieldcrypt.ConfigurationError, match="max_uses"):
        fieldcrypt.DataKeyCache(max_uses=0)


def test_registry_resolves_by_name_and_explains_misses(local_keyring: Keyring) -> None:
    """get_keyring finds registered keyrings and names the registered ones on a miss."""
    fieldcrypt.register(local_keyring)
    assert fieldcrypt.get_keyring("pii") is local_keyring
    with pytest.raises(
        fieldcrypt.ConfigurationError, match=r"no keyring named 'hr' is registered \(registered: pii\)"
    ):
        fieldcrypt.get_keyring("hr")
    with pytest.raises(fieldcrypt.ConfigurationError, match="already registered"):
        fieldcrypt.register(fieldcrypt.testing.local_keyring("pii", register_it=False))
