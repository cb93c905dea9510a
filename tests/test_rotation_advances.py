"""Rotation always advances (issue 8, section 2): the current key is chosen by generation, keys
dated in the future are never chosen, a process never returns to a key it exhausted, and with no
way to make a new key, writes stop at a hard limit instead of going on without bound."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import datakeys
from fieldcrypt.errors import KeyAccessError
from fieldcrypt.keys.record import Purpose
from fieldcrypt.place import Place
from fieldcrypt.rotation import admin
from fieldcrypt.stores.sql import SqlKeyStore

PLACE = Place("users", "ssn")


def key_of(blob: bytes) -> str:
    return blob[1:21].hex()


class FlakyMasterKey:
    """A master key whose wrap can be made to fail, as KMS does in an outage."""

    def __init__(self, inner: fieldcrypt.LocalMasterKey) -> None:
        self.inner = inner
        self.down = False

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        if self.down:
            raise KeyAccessError("KMS did not answer Encrypt in time")
        return self.inner.wrap(data_key, context)

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        return self.inner.unwrap(wrapped, context)

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return self.inner.can_unwrap(recorded_key_id)


@pytest.fixture
def store(sqlite_engine: sa.Engine) -> SqlKeyStore:
    made = SqlKeyStore(sqlite_engine)
    made.create_table()
    return made


def test_a_key_from_a_clock_that_runs_ahead_is_never_chosen_and_rotation_advances(
    store: SqlKeyStore, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A key dated a day ahead (a writer host's clock) is warned about, never current; rotate() still advances."""
    master = fieldcrypt.LocalMasterKey.generate()
    keyring = fieldcrypt.Keyring("pii", master, store)
    first = key_of(keyring.encrypt("a", PLACE))
    ahead = datetime.now(UTC) + timedelta(days=1)
    monkeypatch.setattr(datakeys, "utcnow", lambda: ahead)
    future = fieldcrypt.Keyring("pii", master, store).rotate()  # the host whose clock runs ahead
    monkeypatch.undo()
    caplog.set_level(logging.WARNING)
    keyring.refresh()
    assert key_of(keyring.encrypt("b", PLACE)) == first
    assert f"data key {future.key_id} is dated in the future" in caplog.text
    assert keyring.key_states()[future.key_id] == "dated in the future"
    rotated = keyring.rotate()
    assert rotated.generation is not None
    assert future.generation is not None
    assert rotated.generation > future.generation
    assert key_of(keyring.encrypt("c", PLACE)) == rotated.key_id


def test_a_dba_dating_a_key_in_the_future_does_not_pin_it(store: SqlKeyStore) -> None:
    """A DBA edit moving created_at to 2099 breaks the key's MAC: it is no longer chosen; age rotation works."""
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)
    first = key_of(keyring.encrypt("a", PLACE))
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(store.table)
            .where(store.table.c.key_id == first)
            .values(created_at=datetime(2099, 1, 1))
        )
    keyring.refresh()
    second = key_of(keyring.encrypt("b", PLACE))
    assert second != first
    assert keyring.key_states()[first] == "unauthenticated"


def test_current_key_is_the_highest_generation_not_the_newest_date(store: SqlKeyStore) -> None:
    """Of two authenticated keys the higher generation is current even when the other is dated later."""
    master = fieldcrypt.LocalMasterKey.generate()
    keyring = fieldcrypt.Keyring("pii", master, store)
    older = keyring.rotate()
    newer = keyring.rotate()
    assert (older.generation, newer.generation) == (1, 2)
    assert keyring.chosen_key_id() == newer.key_id
    assert key_of(keyring.encrypt("x", PLACE)) == newer.key_id


def test_a_process_never_returns_to_a_key_it_exhausted(store: SqlKeyStore) -> None:
    """After its budget, a process moves on, and makes a new key rather than go back when the next is retired."""
    keyring = fieldcrypt.Keyring(
        "pii", fieldcrypt.LocalMasterKey.generate(), store, rotate_after_encryptions=3
    )
    first = {key_of(keyring.encrypt(str(i), PLACE)) for i in range(3)}
    assert len(first) == 1
    second = key_of(keyring.encrypt("3", PLACE))
    assert second not in first
    admin.retire(keyring, second)  # the only other key goes away: the exhausted one is all that is left
    third = key_of(keyring.encrypt("4", PLACE))
    assert third not in first | {second}
    assert keyring.key_states()[next(iter(first))] == "exhausted by this process"


def test_writes_past_the_hard_limit_fail_while_no_key_can_be_made(store: SqlKeyStore) -> None:
    """KMS down at the budget: writes go on up to 2x the budget, then fail with KeyAccessError; recover after."""
    master = FlakyMasterKey(fieldcrypt.LocalMasterKey.generate())
    keyring = fieldcrypt.Keyring(
        "pii", master, store, rotate_after_encryptions=4, refresh_every=timedelta(milliseconds=1)
    )
    first = key_of(keyring.encrypt("0", PLACE))
    master.down = True
    kept = [key_of(keyring.encrypt(str(i), PLACE)) for i in range(1, 8)]
    assert set(kept) == {first}  # 8 values: twice the budget, no more
    with pytest.raises(KeyAccessError, match="hard limit"):
        keyring.encrypt("8", PLACE)
    master.down = False
    import time

    time.sleep(0.01)  # past the retry pause
    assert key_of(keyring.encrypt("9", PLACE)) != first
    assert len([r for r in keyring.records(Purpose.ENCRYPTION)]) == 2
