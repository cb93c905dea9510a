"""The caches on the per-value paths give exactly the uncached results and follow key changes."""

from __future__ import annotations

import dataclasses
import gc
import os

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import Keyring, Place, _aead, index_records
from fieldcrypt import format as fmt
from fieldcrypt import place as place_module
from fieldcrypt.keyring import BLIND_INDEX_LABEL
from fieldcrypt.sqlalchemy import Encrypted
from fieldcrypt.sqlalchemy import blind_index as sql_blind_index

COLUMN = Place("users", "ssn")


def test_prepared_hmac_equals_one_shot_hmac_for_every_prefix() -> None:
    """HmacKey.digest(prefix, m) is HMAC-SHA256(key, prefix + m), also past its bound of prefixes."""
    key = os.urandom(32)
    prepared = _aead.HmacKey(key)
    prefixes = [os.urandom(n % 40) for n in range(_aead.HmacKey.MAX_PREFIXES + 10)]
    for prefix in [*prefixes, *prefixes[:5]]:
        message = os.urandom(11)
        assert prepared.digest(prefix, message) == _aead.hmac_sha256(key, prefix + message)
    assert "key hidden" in repr(prepared)
    assert key.hex() not in repr(prepared)


def test_blind_index_token_is_the_documented_hmac(local_keyring: Keyring) -> None:
    """A token is HMAC-SHA256(index key, label || column place || value) truncated, key unwrapped by hand."""
    token = local_keyring.blind_index(b"123456789", Place("users", "ssn", row=7))
    (record,) = local_keyring.records(fieldcrypt.Purpose.BLIND_INDEX)
    data_key = local_keyring._unwrap(record)
    expected = _aead.hmac_sha256(data_key, BLIND_INDEX_LABEL + COLUMN.encoded + b"123456789")
    assert token == expected[: local_keyring.blind_index_bytes]


def test_rotated_blind_index_key_is_used_at_once_by_this_process(local_keyring: Keyring) -> None:
    """After rotate(BLIND_INDEX) new tokens come from the new key; queries try both keys."""
    before = local_keyring.blind_index(b"123456789", COLUMN)
    local_keyring.rotate(fieldcrypt.Purpose.BLIND_INDEX)
    after = local_keyring.blind_index(b"123456789", COLUMN)
    assert after != before
    assert local_keyring.blind_index_candidates(b"123456789", COLUMN) == [before, after]


def test_forgotten_blind_index_key_is_unwrapped_again(local_keyring: Keyring) -> None:
    """forget() drops the prepared HMAC states with the key: the next token unwraps it again."""
    local_keyring.blind_index(b"x", COLUMN)
    (record,) = local_keyring.records(fieldcrypt.Purpose.BLIND_INDEX)
    unwraps: list[str] = []
    original = local_keyring._unwrap

    def counting(rec: object, place: object = None) -> bytes:
        unwraps.append("unwrap")
        return original(rec, place)  # type: ignore[arg-type]

    local_keyring._unwrap = counting  # type: ignore[method-assign]
    token = local_keyring.blind_index(b"x", COLUMN)
    assert unwraps == []
    local_keyring.forget(record)
    assert local_keyring.blind_index(b"x", COLUMN) == token
    assert unwraps == ["unwrap"]


def test_place_encoding_is_unchanged_by_the_head_cache() -> None:
    """Places built before and after the cache holds their table/column encode as the format says."""
    place_module._heads.clear()
    first = Place("users", "ssn", row=5)
    again = Place("users", "ssn", row=5)
    assert (
        first.encoded == again.encoded == (b"\x00\x05users\x00\x03ssn\x01" + place_module.encode_row_key(5))
    )
    assert place_module.encode_row_key(5) == b"\x00\x01i\x00\x00\x00\x015"
    assert place_module.encode_row_key("ab") == b"\x00\x01s\x00\x00\x00\x02ab"
    assert place_module.encode_row_key(("ab",)) == place_module.encode_row_key("ab")
    with pytest.raises(fieldcrypt.ConfigurationError):
        Place("users", "")
    with pytest.raises(fieldcrypt.ConfigurationError):
        Place("", "ssn")


def test_decrypt_fast_path_still_refuses_tampering_and_wrong_places(local_keyring: Keyring) -> None:
    """The direct AES-GCM call raises the opaque DecryptionError for a wrong place or tag."""
    blob = local_keyring.encrypt("123-45-6789", COLUMN)
    assert local_keyring.decrypt(blob, COLUMN) == b"123-45-6789"
    with pytest.raises(fieldcrypt.DecryptionError):
        local_keyring.decrypt(blob, Place("users", "email"))
    with pytest.raises(fieldcrypt.DecryptionError):
        local_keyring.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), COLUMN)
    assert fmt.from_text(fmt.to_text(blob)) == blob
    with pytest.raises(fmt.MalformedCiphertext):
        fmt.from_text("é" + fmt.to_text(blob)[1:])


def test_index_default_source_cache_follows_each_table_copy(local_keyring: Keyring) -> None:
    """A copied table's inserts index under its own place; a collected index column leaves no entry."""
    fieldcrypt.register(local_keyring, replace=True)
    metadata = sa.MetaData()
    original = sa.Table(
        "people",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="pii", searchable=True)),
    )
    copy = original.to_metadata(sa.MetaData(), name="people_copy")
    engine = sa.create_engine("sqlite://")
    original.metadata.create_all(engine)
    copy.metadata.create_all(engine)
    with engine.begin() as conn:
        for table in (original, copy):
            conn.execute(sa.insert(table), [{"id": 1, "ssn": "123-45-6789"}, {"id": 2, "ssn": "1"}])
    with engine.connect() as conn:
        for table in (original, copy):
            stored = conn.execute(sa.text(f"SELECT ssn_bidx FROM {table.name} WHERE id = 1")).scalar_one()
            assert stored == local_keyring.blind_index(b"123-45-6789", Place(table.name, "ssn"))
    watched = {id(original.c.ssn_bidx), id(copy.c.ssn_bidx)}
    assert watched <= set(sql_blind_index._sources)
    engine.dispose()
    del original, copy, metadata, conn, table, engine
    gc.collect()
    assert not watched & set(sql_blind_index._sources)


def test_place_stays_frozen_and_replaceable() -> None:
    """The hand-written Place constructor keeps the dataclass contract: frozen, equal, replaceable."""
    place = Place("users", "ssn", row=5)
    assert place == Place("users", "ssn", row=5)
    assert hash(place) == hash(Place("users", "ssn", row=5))
    assert dataclasses.replace(place, row=6).encoded == Place("users", "ssn", row=6).encoded
    with pytest.raises(dataclasses.FrozenInstanceError):
        place.row = 6  # type: ignore[misc]


def test_index_check_cache_leaves_with_its_keyring() -> None:
    """A keyring's checked columns are forgotten when the keyring is collected (no stale id reuse)."""
    keyring = Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    index_records.check(keyring, COLUMN, None, writing=True)
    key = id(keyring)
    assert (COLUMN.table, COLUMN.column) in index_records._checked[key]
    del keyring
    gc.collect()
    assert key not in index_records._checked
