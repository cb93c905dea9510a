"""Re-encryption against KMS (moto over HTTP): injected throttling, and the KMS rate limit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.awsrequest import AWSResponse
from rotation_helpers import create_users, raw, ssn

import fieldcrypt
from fieldcrypt.keys.kms import KmsMasterKey
from fieldcrypt.rotation import ColumnSpec, reencrypt_column
from fieldcrypt.stores.sql import SqlKeyStore


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def throttle(client: Any, operation: str, times: int) -> list[float]:
    """Make the next ``times`` HTTP sends of ``operation`` answer ThrottlingException (moto never
    throttles), below botocore's retry layer so its own retries see them; returns call times."""
    calls: list[float] = []

    def send(request: Any, **_: Any) -> AWSResponse | None:
        calls.append(time.monotonic())
        if len(calls) > times:
            return None
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))

    client.meta.events.register(f"before-send.kms.{operation}", send)
    return calls


@pytest.fixture
def kms_table(pg_engine: sa.Engine, kms_key: str, aws_client: Callable[..., Any]) -> Any:
    """users on PostgreSQL: 40 rows under 4 successive data keys of a KMS-backed keyring."""
    store = SqlKeyStore(pg_engine)
    store.create_table()
    writer = fieldcrypt.Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    place = fieldcrypt.Place("users", "ssn")
    rows = []
    for i in range(1, 41):
        if i % 10 == 1:
            writer.rotate()
        rows.append((i, writer.encrypt(ssn(i), place)))
    create_users(pg_engine, sa.LargeBinary, rows)
    new = writer.rotate().key_id
    return pg_engine, kms_key, new


def _fresh_keyring(kms_key: str, client: Any, engine: sa.Engine) -> fieldcrypt.Keyring:
    # A new process: nothing cached, so each old data key costs one KMS Decrypt.
    return fieldcrypt.register(
        fieldcrypt.Keyring("pii", KmsMasterKey(kms_key, client=client), SqlKeyStore(engine))
    )


def test_throttled_kms_slows_retries_and_finishes(kms_table: Any, aws_client: Callable[..., Any]) -> None:
    """Seven throttled Decrypts (beyond botocore's retries): the engine backs off, retries, loses nothing."""
    engine, kms_key, new = kms_table
    client = aws_client("kms", retries={"mode": "standard", "max_attempts": 2})
    calls = throttle(client, "Decrypt", 7)
    keyring = _fresh_keyring(kms_key, client, engine)
    report = reencrypt_column(
        engine, ColumnSpec("users", "ssn", keyring="pii"), batch_size=15, retry_base_seconds=0.02
    )
    assert report.retries >= 2  # 7 throttles; botocore makes at most 2 attempts per engine try
    assert (report.written, report.failed) == (40, 0)
    assert len(calls) >= 7 + 5  # the throttled sends, then one Decrypt per data key
    stored = raw(engine)
    place = fieldcrypt.Place("users", "ssn")
    assert {keyring.key_id_of(b) for b in stored.values()} == {new}
    assert all(keyring.decrypt(b, place) == ssn(i).encode() for i, b in stored.items())


def test_throttling_that_never_ends_fails_cleanly(kms_table: Any, aws_client: Callable[..., Any]) -> None:
    """When KMS keeps throttling past the retry budget, the run stops with KeyAccessError; no row changes."""
    engine, kms_key, _ = kms_table
    client = aws_client("kms", retries={"mode": "standard", "max_attempts": 1})
    throttle(client, "Decrypt", 10_000)
    _fresh_keyring(kms_key, client, engine)
    before = raw(engine)
    with pytest.raises(fieldcrypt.KeyAccessError, match=r"ThrottlingException.*lower the request rate"):
        reencrypt_column(
            engine, ColumnSpec("users", "ssn", keyring="pii"), max_retries=2, retry_base_seconds=0.01
        )
    assert raw(engine) == before


def test_rate_limit_spaces_kms_calls(kms_table: Any, aws_client: Callable[..., Any]) -> None:
    """At 2 KMS calls per second, the 6 Decrypts of a cold run (5 and the anchor) take at least 1.9 s."""
    engine, kms_key, _ = kms_table
    client = aws_client("kms")
    calls = throttle(client, "Decrypt", 0)
    _fresh_keyring(kms_key, client, engine)
    report = reencrypt_column(engine, ColumnSpec("users", "ssn", keyring="pii"), max_kms_calls_per_second=2)
    assert report.written == 40
    assert len(calls) == 6
    assert calls[-1] - calls[0] >= 1.9  # a burst of 2, then one token per 0.5 s
