"""Key administration: rewrap to another master key (ReEncrypt inside KMS where possible),
retire and destroy. Rewrap touches only key-store rows, whatever the size of the tables."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.awsrequest import AWSResponse
from rotation_helpers import ResponseBody, create_users, ssn

import fieldcrypt
from fieldcrypt.keys.kms import KmsMasterKey
from fieldcrypt.ratelimit import limited
from fieldcrypt.rotation import admin
from fieldcrypt.stores.sql import SqlKeyStore


def disable(client: Any, arn: str) -> None:
    """Answer DisabledException to any request naming ``arn`` (moto keeps using disabled keys)."""

    def send(request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if arn.split("/")[-1] not in body:
            return None
        error = json.dumps({"__type": "DisabledException", "message": f"{arn} is disabled."}).encode()
        return AWSResponse(
            request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, ResponseBody(error)
        )

    client.meta.events.register("before-send.kms.*", send)


def _kms_key(kms: Any) -> str:
    return str(kms.create_key()["KeyMetadata"]["Arn"])


def _keyring_with_keys(master: fieldcrypt.MasterKey, engine: sa.Engine, n: int) -> fieldcrypt.Keyring:
    """Keyring "pii" with ``n`` data keys and a blind-index key, its key store in ``engine``."""
    store = SqlKeyStore(engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", master, store)
    for _ in range(n):
        keyring.rotate()
    keyring.rotate(fieldcrypt.Purpose.BLIND_INDEX)
    return keyring


def test_kms_to_kms_rewrap_uses_reencrypt_and_old_key_can_be_disabled(
    sqlite_engine: sa.Engine, aws_client: Callable[..., Any], request_log: Any
) -> None:
    """Same-region KMS rewrap is one ReEncrypt per data key; then the old key is disabled and all decrypts."""
    kms = request_log.attach(aws_client("kms"))
    old_arn = _kms_key(kms)
    new_arn = _kms_key(kms)
    old_keyring = _keyring_with_keys(KmsMasterKey(old_arn, client=kms), sqlite_engine, 3)
    store = old_keyring.key_store
    place = fieldcrypt.Place("users", "ssn")
    values = [old_keyring.encrypt(ssn(i), place) for i in range(5)]
    request_log.calls.clear()
    report = admin.rewrap(old_keyring, KmsMasterKey(new_arn, client=kms), remove_old=True)
    # One ReEncrypt more than data keys: the keyring's anchor moves with them.
    assert (report.rewrapped, report.reencrypt_calls, report.unwrap_wrap_calls) == (4, 5, 0)
    assert request_log.operations() == ["ReEncrypt"] * 5  # the data keys never left KMS
    assert all(set(r.wraps) == {new_arn} for r in store.list("pii"))
    disable(kms, old_arn)
    fresh = fieldcrypt.Keyring("pii", KmsMasterKey(new_arn, client=kms), store)
    assert [fresh.decrypt(v, place) for v in values] == [ssn(i).encode() for i in range(5)]
    again = admin.rewrap(old_keyring, KmsMasterKey(new_arn, client=kms))
    assert (again.rewrapped, again.already) == (0, 4)


def test_rewrap_sees_through_a_rate_limited_keyring(
    sqlite_engine: sa.Engine, aws_client: Callable[..., Any], request_log: Any
) -> None:
    """A rate-limited keyring's KMS key still moves its data keys by ReEncrypt, never unwrapping them here."""
    kms = request_log.attach(aws_client("kms"))
    old_arn, new_arn = _kms_key(kms), _kms_key(kms)
    keyring = _keyring_with_keys(KmsMasterKey(old_arn, client=kms), sqlite_engine, 1)
    request_log.calls.clear()
    report = admin.rewrap(limited(keyring, 1000.0), KmsMasterKey(new_arn, client=kms))
    assert (report.rewrapped, report.reencrypt_calls, report.unwrap_wrap_calls) == (2, 3, 0)  # + anchor
    assert request_log.operations() == ["ReEncrypt"] * 3


def test_local_to_kms_and_across_regions_unwrap_then_wrap(
    sqlite_engine: sa.Engine, aws_client: Callable[..., Any], request_log: Any
) -> None:
    """Local -> KMS (us-east-1) -> KMS in us-west-2: unwrap+wrap each time; old copies kept unless asked."""
    east = request_log.attach(aws_client("kms", "us-east-1"))
    west = request_log.attach(aws_client("kms", "us-west-2"))
    east_arn = _kms_key(east)
    west_arn = _kms_key(west)
    local = fieldcrypt.LocalMasterKey.generate()
    keyring = _keyring_with_keys(local, sqlite_engine, 2)
    store = keyring.key_store
    place = fieldcrypt.Place("users", "ssn")
    value = keyring.encrypt("123-45-6789", place)
    report = admin.rewrap(keyring, KmsMasterKey(east_arn, client=east))
    assert (report.rewrapped, report.reencrypt_calls, report.unwrap_wrap_calls) == (3, 0, 4)  # + anchor
    assert request_log.operations() == ["CreateKey", "CreateKey"] + ["Encrypt"] * 4
    assert all(set(r.wraps) == {local.key_id, east_arn} for r in store.list("pii"))
    on_kms = fieldcrypt.Keyring("pii", KmsMasterKey(east_arn, client=east), store)
    request_log.calls.clear()
    cross = admin.rewrap(on_kms, KmsMasterKey(west_arn, client=west), remove_old=True)
    assert (cross.rewrapped, cross.reencrypt_calls, cross.removed_copies) == (3, 0, 6)
    assert sorted({(op, region) for op, region, _ in request_log.calls}) == [
        ("Decrypt", "us-east-1"),
        ("Encrypt", "us-west-2"),
    ]
    in_west = fieldcrypt.Keyring("pii", KmsMasterKey(west_arn, client=west), store)
    assert in_west.decrypt(value, place) == b"123-45-6789"


def test_rewrap_without_a_usable_source_key_says_which_key_to_configure(sqlite_engine: sa.Engine) -> None:
    """A keyring whose master key wraps none of the data keys cannot rewrap them: a precise error."""
    store = _keyring_with_keys(fieldcrypt.LocalMasterKey.generate(), sqlite_engine, 1).key_store
    stranger = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), store)
    with pytest.raises(
        fieldcrypt.KeyAccessError, match=r"no configured master key of keyring 'pii' can open"
    ):
        admin.rewrap(stranger, fieldcrypt.LocalMasterKey.generate())


def test_retire_stops_new_use_but_still_decrypts(local_keyring: fieldcrypt.Keyring) -> None:
    """A retired key is not used for new values; values under it still decrypt."""
    place = fieldcrypt.Place("users", "ssn")
    value = local_keyring.encrypt("x", place)
    old = local_keyring.current_key_id()
    record = admin.retire(local_keyring, old)
    assert record.status is fieldcrypt.Status.RETIRED
    assert local_keyring.current_key_id() != old
    assert local_keyring.decrypt(value, place) == b"x"
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"keyring 'pii' has no data key 'feed'"):
        admin.retire(local_keyring, "feed")


def _users_fingerprint(engine: sa.Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "SELECT count(*), md5(string_agg(id::text || encode(ssn, 'hex'), ',' ORDER BY id)), "
                    "max(xmin::text::bigint) FROM users"
                )
            ).one()
        )


@pytest.mark.parametrize("rows", [10_000, 200_000])
def test_rewrap_scales_with_data_keys_not_rows(
    pg_engine: sa.Engine, aws_client: Callable[..., Any], request_log: Any, rows: int
) -> None:
    """Rewrap over 10,000 or 200,000 rows: same KMS calls, no row of users written, all still decrypts."""
    kms = request_log.attach(aws_client("kms"))
    old_arn = _kms_key(kms)
    new_arn = _kms_key(kms)
    keyring = _keyring_with_keys(KmsMasterKey(old_arn, client=kms), pg_engine, 3)
    store = keyring.key_store
    place = fieldcrypt.Place("users", "ssn")
    create_users(pg_engine, sa.LargeBinary, [(i, keyring.encrypt(ssn(i), place)) for i in range(1, rows + 1)])
    before = _users_fingerprint(pg_engine)
    request_log.calls.clear()
    started = time.monotonic()
    report = admin.rewrap(keyring, KmsMasterKey(new_arn, client=kms), remove_old=True)
    elapsed = time.monotonic() - started
    # 3 data keys + 1 blind-index key + the keyring's anchor, whatever the row count
    assert request_log.operations() == ["ReEncrypt"] * 5
    assert report.rewrapped == 4
    assert _users_fingerprint(pg_engine) == before  # not one row of users written
    disable(kms, old_arn)
    fresh = fieldcrypt.Keyring("pii", KmsMasterKey(new_arn, client=kms), store)
    with pg_engine.connect() as conn:
        sample = conn.execute(sa.text("SELECT id, ssn FROM users WHERE id % 997 = 1")).all()
    assert all(fresh.decrypt(bytes(v), place) == ssn(i).encode() for i, v in sample)
    print(f"rewrap of 4 data keys over {rows} rows: {elapsed:.3f}s")


def test_rewrap_dry_run_predicts_the_kms_calls(
    sqlite_engine: sa.Engine, aws_client: Callable[..., Any], request_log: Any
) -> None:
    """A dry run calls nothing and predicts the ReEncrypt (same region) and unwrap+wrap calls a real run makes."""
    kms = request_log.attach(aws_client("kms"))
    old_arn, new_arn = _kms_key(kms), _kms_key(kms)
    keyring = _keyring_with_keys(KmsMasterKey(old_arn, client=kms), sqlite_engine, 2)
    local = fieldcrypt.LocalMasterKey.generate()
    for destination, calls in (
        (KmsMasterKey(new_arn, client=kms), "reencrypt_calls"),
        (local, "unwrap_wrap_calls"),
    ):
        request_log.calls.clear()
        predicted = admin.rewrap(keyring, destination, dry_run=True)
        assert request_log.operations() == []
        done = admin.rewrap(keyring, destination)
        assert (predicted.reencrypt_calls, predicted.unwrap_wrap_calls) == (
            done.reencrypt_calls,
            done.unwrap_wrap_calls,
        )
        assert getattr(predicted, calls) == 4  # 2 data keys + 1 blind-index key + the anchor
