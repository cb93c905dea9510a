"""Per-subject data keys: one key per subject inside a keyring, bound to the subject, erasable alone."""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import (
    DecryptionError,
    KeyDestroyedError,
    Keyring,
    LocalMasterKey,
    MemoryKeyStore,
    Place,
    subjects,
)
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.keys.record import Purpose, Status
from fieldcrypt.stores.base import KeyStore
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore
from fieldcrypt.stores.sql import SqlKeyStore
from fieldcrypt.subjects import canonical_subject
from fieldcrypt.testing import CountingMasterKey
from typecheck import mypy_strict

SSN = Place("users", "ssn")


def keyring(master: MasterKey, store: KeyStore, **options: Any) -> Keyring:
    return Keyring("pii", master, store, **options)


def test_values_of_one_subject_use_that_subjects_own_key() -> None:
    """Two subjects' values name different keys, neither the keyring's shared data key; raw is ciphertext."""
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore())
    alice = ring.encrypt_for_subject("alice@example.com", "123-45-6789", SSN)
    bob = ring.encrypt_for_subject("bob@example.com", "123-45-6789", SSN)
    shared = ring.encrypt("123-45-6789", SSN)
    assert b"123-45-6789" not in alice
    assert b"123-45-6789" not in bob
    assert len({alice[:21], bob[:21], shared[:21]}) == 3
    assert ring.decrypt_for_subject("alice@example.com", alice, SSN) == b"123-45-6789"
    assert ring.decrypt_for_subject("bob@example.com", bob, SSN) == b"123-45-6789"


def test_a_value_of_one_subject_fails_in_another_subjects_row() -> None:
    """Subject A's value read as subject B's (moved to B's row) raises DecryptionError; so does a shared-key value."""
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore())
    alice = ring.encrypt_for_subject("alice", "secret", SSN)
    ring.encrypt_for_subject("bob", "other", SSN)
    with pytest.raises(DecryptionError):
        ring.decrypt_for_subject("bob", alice, SSN)
    with pytest.raises(DecryptionError):
        ring.decrypt_for_subject("bob", ring.encrypt("secret", SSN), SSN)
    with pytest.raises(DecryptionError):
        ring.decrypt(alice, SSN)  # a reader that does not know the subject cannot open it


def test_the_subject_id_is_not_stored_in_clear() -> None:
    """The key store holds an HMAC tag of the subject, never the id (an email) itself."""
    store = MemoryKeyStore()
    ring = keyring(LocalMasterKey.generate(), store)
    ring.encrypt_for_subject("alice@example.com", "x", SSN)
    (record,) = store.list("pii#subjects")
    assert record.purpose is Purpose.SUBJECT
    assert record.key_id == ring.subject_tag("alice@example.com")
    assert "alice" not in repr(vars(store))
    assert "alice" not in repr(record)


def test_one_subject_id_whatever_its_python_type() -> None:
    """5 and "5" (an Integer column and the CLI's --subject 5) name one subject; bad ids are refused without quoting them."""
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore())
    value = ring.encrypt_for_subject(5, "x", SSN)
    assert ring.decrypt_for_subject("5", value, SSN) == b"x"
    ident = uuid.uuid4()
    assert ring.decrypt_for_subject(str(ident), ring.encrypt_for_subject(ident, "y", SSN), SSN) == b"y"
    for bad in (True, b"5", None, "", "a\x00b", "x" * 1025):
        with pytest.raises(ConfigurationError) as caught:
            canonical_subject(bad)  # type: ignore[arg-type]
        assert "a\x00b" not in str(caught.value)


def test_making_and_opening_subject_keys_costs_no_kms_call_per_subject() -> None:
    """100 subjects: one KMS wrap for the wrapping key (plus the anchor's); a new process opens them all with two unwraps."""
    master = CountingMasterKey(LocalMasterKey.generate())
    store = MemoryKeyStore()
    writer = keyring(master, store)
    values = {n: writer.encrypt_for_subject(n, f"value {n}", SSN) for n in range(100)}
    assert master.calls["wrap"] == 2  # the anchor and the subject-wrapping key
    master.calls.clear()
    reader = keyring(master, store)
    assert all(reader.decrypt_for_subject(n, v, SSN) == f"value {n}".encode() for n, v in values.items())
    assert (master.calls["wrap"], master.calls["unwrap"]) == (0, 2)  # the anchor and the subject-wrapping key
    assert len(store.list("pii")) == 2  # the keyring's own records: anchor, wrapping key
    assert len(store.list("pii#subjects")) == 100  # one record per subject


def test_the_subject_key_cache_is_bounded() -> None:
    """With room for 10 subjects, 50 subjects leave at most 10 keys cached and every value still reads."""
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore(), subject_cache_entries=10)
    values = {n: ring.encrypt_for_subject(n, str(n), SSN) for n in range(50)}
    assert len(ring.subject_cache) <= 10
    assert all(ring.decrypt_for_subject(n, v, SSN) == str(n).encode() for n, v in values.items())
    assert len(ring.subject_cache) <= 10


def test_a_subject_record_copied_to_another_tag_does_not_open() -> None:
    """Bob's record filed under Alice's tag (someone who can write the key store) does not open: Alice's values stay safe."""
    store = MemoryKeyStore()
    ring = keyring(LocalMasterKey.generate(), store)
    ring.encrypt_for_subject("bob", "b", SSN)
    bob = store.get(ring.subject_tag("bob"))
    assert bob is not None
    store.put(bob.evolve(key_id=ring.subject_tag("alice")))
    with pytest.raises(DecryptionError):
        keyring(ring.master_key, store).encrypt_for_subject("alice", "a", SSN)


def test_a_read_of_an_unknown_subject_writes_nothing_and_a_later_write_makes_its_key() -> None:
    """Reading a subject with no key fails without writing; a write right after still makes the key."""
    store = MemoryKeyStore()
    ring = keyring(LocalMasterKey.generate(), store)
    ring.encrypt("warm", SSN)
    stray = keyring(ring.master_key, MemoryKeyStore()).encrypt_for_subject("carol", "c", SSN)
    before = len(store.list("pii")) + len(store.list("pii#subjects"))
    with pytest.raises(DecryptionError):
        ring.decrypt_for_subject("carol", stray, SSN)
    assert len(store.list("pii")) + len(store.list("pii#subjects")) == before
    value = ring.encrypt_for_subject("carol", "c", SSN)
    assert ring.decrypt_for_subject("carol", value, SSN) == b"c"


def _shred_leaves_others(store: KeyStore) -> None:
    master = LocalMasterKey.generate()
    ring = keyring(master, store)
    alice = ring.encrypt_for_subject("alice@example.com", "123-45-6789", SSN)
    bob = ring.encrypt_for_subject("bob@example.com", "987-65-4321", SSN)
    other_process = keyring(master, store)
    assert other_process.decrypt_for_subject("alice@example.com", alice, SSN) == b"123-45-6789"
    shredded = ring.shred_subject("alice@example.com")
    assert (shredded.had_key, shredded.already_shredded) == (True, False)
    record = store.get(shredded.subject_tag)
    assert record is not None
    assert record.status is Status.DESTROYED
    assert not record.wraps
    for reader in (ring, keyring(master, store)):  # this process at once, a new one too
        with pytest.raises(KeyDestroyedError):
            reader.decrypt_for_subject("alice@example.com", alice, SSN)
        assert reader.decrypt_for_subject("bob@example.com", bob, SSN) == b"987-65-4321"
    with pytest.raises(KeyDestroyedError):
        ring.encrypt_for_subject("alice@example.com", "new", SSN)  # the id never gets a key again
    assert ring.shred_subject("alice@example.com").already_shredded


def test_shredding_a_subject_on_a_sql_key_store_leaves_every_other_subject(engine: sa.Engine) -> None:
    """SQLite, PostgreSQL, MariaDB key stores: the shredded subject's values raise KeyDestroyedError, others read."""
    store = SqlKeyStore(engine)
    store.create_table()
    _shred_leaves_others(store)


def test_shredding_a_subject_on_a_dynamodb_key_store_leaves_every_other_subject(
    aws_client: Callable[..., Any],
) -> None:
    """DynamoDB (moto) key store, subject keys in a table of their own: the same erasure."""
    client = aws_client("dynamodb")
    store = DynamoDBKeyStore(f"keys-{uuid.uuid4().hex[:8]}", client=client)
    subjects = DynamoDBKeyStore(f"subjects-{uuid.uuid4().hex[:8]}", client=client)
    store.create_table()
    subjects.create_table()
    master = LocalMasterKey.generate()
    ring = keyring(master, store, subject_key_store=subjects)
    alice = ring.encrypt_for_subject("alice", "a", SSN)
    bob = ring.encrypt_for_subject("bob", "b", SSN)
    ring.shred_subject("alice")
    fresh = keyring(master, store, subject_key_store=subjects)
    with pytest.raises(KeyDestroyedError):
        fresh.decrypt_for_subject("alice", alice, SSN)
    assert fresh.decrypt_for_subject("bob", bob, SSN) == b"b"
    assert store.list("pii#subjects") == []  # the keyring's table holds no subject rows
    shared = DynamoDBKeyStore(f"shared-{uuid.uuid4().hex[:8]}", client=client)
    shared.create_table()
    _shred_leaves_others(shared)  # and with subject rows in the keyring's own table


def test_shredding_reports_the_tag_on_the_audit_logger_never_the_subject(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One subject_key.shredded line with the subject's tag; the email appears in no log line."""
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore())
    ring.encrypt_for_subject("alice@example.com", "x", SSN)
    with caplog.at_level(logging.INFO, logger="fieldcrypt"):
        result = ring.shred_subject("alice@example.com")
    lines = [r.getMessage() for r in caplog.records if "subject_key.shredded" in r.getMessage()]
    assert len(lines) == 1
    assert result.subject_tag in lines[0]
    assert "alice" not in caplog.text


def test_shredding_an_unknown_subject_leaves_a_tombstone() -> None:
    """A subject shredded before any value was written can never get a key afterwards."""
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore())
    assert not ring.shred_subject("dave").had_key
    with pytest.raises(KeyDestroyedError):
        ring.encrypt_for_subject("dave", "x", SSN)


def test_a_producer_keyring_refuses_subject_keys() -> None:
    """A keyring that cannot decrypt cannot open a subject key to use it: refused, not silently shared."""
    from fieldcrypt.keys.kms_rsa import RsaProducerKey

    assert RsaProducerKey  # the class exists; producers are built in tests/test_producers.py
    ring = keyring(LocalMasterKey.generate(), MemoryKeyStore())
    ring.write_only = True
    with pytest.raises(fieldcrypt.KeyAccessError):
        ring.encrypt_for_subject("alice", "x", SSN)


def test_shred_reaches_a_backup_only_after_the_rekey_and_the_master_key_move() -> None:
    """A key-store backup restored after a shred reopens the subject until rekey_subjects + rewrap retire its wrapping."""
    from fieldcrypt.rotation import admin

    old, new = LocalMasterKey.generate(), LocalMasterKey.generate()
    store = MemoryKeyStore()
    ring = keyring(old, store, refresh_every=timedelta(milliseconds=50), clock_skew=timedelta(0))
    alice = ring.encrypt_for_subject("alice", "a", SSN)
    bob = ring.encrypt_for_subject("bob", "b", SSN)
    backup = {r.key_id: r for name in ("pii", "pii#subjects") for r in store.list(name)}
    alice_tag = ring.shred_subject("alice").subject_tag

    def restored_alice(master_keys: tuple[MasterKey, ...]) -> bytes:
        """The live store with Alice's record put back from the backup, read by a new process."""
        copy = MemoryKeyStore()
        for name in ("pii", "pii#subjects"):
            for record in store.list(name):
                copy.put(backup[record.key_id] if record.key_id == alice_tag else record)
        for record in backup.values():  # the old wrapping key, if the live store lost it
            if copy.get(record.key_id) is None:
                copy.put(record)
        reader = Keyring("pii", master_keys[0], copy, also_decrypt_with=master_keys[1:])
        return reader.decrypt_for_subject("alice", alice, SSN)

    assert restored_alice((old,)) == b"a"  # shred alone does not reach the backup
    first = ring.rekey_subjects()
    assert first.rewrapped == 1
    assert first.pending
    assert not first.destroyed
    import time

    time.sleep(0.1)
    done = ring.rekey_subjects(finish=True)
    assert done.destroyed == first.pending
    assert not done.pending
    admin.rewrap(ring, new, remove_old=True)
    # The old master key is retired (KMS key deleted, key file gone): only the new one is left.
    with pytest.raises((DecryptionError, fieldcrypt.KeyAccessError)):
        restored_alice((new,))
    after = Keyring("pii", new, store)
    assert after.decrypt_for_subject("bob", bob, SSN) == b"b"
    with pytest.raises(KeyDestroyedError):
        after.decrypt_for_subject("alice", alice, SSN)


def test_a_tenants_subject_keys_are_its_own_and_not_listed_as_a_tenant() -> None:
    """A tenant keyring's subject keys sit under "<family>/<tenant>#subjects": stored_tenants lists the tenant once."""
    from fieldcrypt.tenants import TenantKeyrings

    master = LocalMasterKey.generate()
    store = MemoryKeyStore()
    tenants = TenantKeyrings("pii", key_store=store, master_key_for=lambda tenant: master)
    acme, globex = tenants.keyring_for("acme"), tenants.keyring_for("globex")
    value = acme.encrypt_for_subject("alice", "a", SSN)
    globex.encrypt_for_subject("alice", "g", SSN)
    assert tenants.stored_tenants() == ["acme", "globex"]
    with pytest.raises(DecryptionError):
        globex.decrypt_for_subject("alice", value, SSN)  # another tenant's subject of the same id
    acme.shred_subject("alice")
    assert globex.decrypt_for_subject("alice", globex.encrypt_for_subject("alice", "g2", SSN), SSN) == b"g2"


HOSTED = """\
from fieldcrypt import Keyring, Place
from fieldcrypt.subjects import SubjectKeys


def use(bare: SubjectKeys, keyring: Keyring, place: Place) -> None:
    bare.encrypt_for_subject(1, b"x", place)
    keyring.encrypt_for_subject(1, b"x", place)
    keyring.decrypt_for_subject(1, b"x", place)
"""


def test_the_subject_value_methods_are_typed_for_their_keyring_host(tmp_path: Path) -> None:
    """mypy --strict accepts them on a Keyring, refuses them on a bare SubjectKeys; no placeholder bodies."""
    result = mypy_strict(tmp_path / "hosted.py", HOSTED)
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert len(errors) == 1, result.stdout
    assert 'hosted.py:6: error: Invalid self argument "SubjectKeys"' in errors[0]
    assert "NotImplementedError" not in inspect.getsource(subjects)
