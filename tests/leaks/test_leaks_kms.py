"""KMS calls at DEBUG: botocore's request and response bodies of fieldcrypt's clients hold no key
material; failures (denied, throttled, unreachable) leave no plaintext in errors or logs."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.awsrequest import AWSResponse
from leak_models import NOTE, PLAINTEXTS, SSN, Base, Person
from leak_scanner import Capture, Secrets
from sqlalchemy.orm import Session

import fieldcrypt
from fieldcrypt import Keyring, KmsMasterKey, Place

PLACE = Place("leak_people", "ssn")


class Recording(KmsMasterKey):
    """A KMS master key that remembers each data key it was asked to wrap (to scan for it)."""

    wrapped: list[bytes]

    def wrap(self, data_key: bytes, context: Any) -> bytes:
        self.wrapped.append(data_key)
        return super().wrap(data_key, context)


def _recording(arn: str, **options: Any) -> Recording:
    master = Recording(arn, **options)
    master.wrapped = []
    return master


def _answer_with(code: str) -> Callable[..., AWSResponse]:
    """A before-send hook answering every request with a KMS error (after botocore logged it)."""

    def hook(request: Any, **_: Any) -> AWSResponse:
        body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()

        class Raw:
            def stream(self, *args: Any, **kwargs: Any) -> Any:
                yield body

        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, Raw())

    return hook


def test_debug_logs_of_kms_calls_hold_no_key_material(
    kms_key: str, aws_client: Callable[..., Any], debug_logs: Capture, secrets: Secrets
) -> None:
    """Encrypt (data key in the request) and Decrypt (data key in the response) at DEBUG: redacted."""
    store = fieldcrypt.MemoryKeyStore()
    writer = Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    blob = writer.encrypt(SSN, PLACE)
    writer.blind_index(SSN, PLACE)
    reader = Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    assert reader.decrypt_str(blob, PLACE) == SSN
    messages = [r.getMessage() for r in debug_logs.records]
    assert any("Making request for OperationModel(name=Encrypt)" in m for m in messages)
    assert any(m.startswith("Response body") for m in messages)
    assert len(store.list("pii")) == 3  # the anchor, an encryption key and a blind-index key were wrapped
    secrets.plaintext(*PLAINTEXTS).keyring(writer)
    assert secrets.assert_records_clean(debug_logs.records) > 20


def test_other_clients_keep_their_debug_logs(
    kms_key: str, aws_client: Callable[..., Any], debug_logs: Capture
) -> None:
    """Redaction is scoped to fieldcrypt's clients: an application's own KMS call is logged as before."""
    Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), fieldcrypt.MemoryKeyStore()).warm_up()
    own = b"the application's own secret bytes"
    aws_client("kms").encrypt(KeyId=kms_key, Plaintext=own)
    assert any(base64.b64encode(own).decode() in r.getMessage() for r in debug_logs.records)


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException", "DisabledException"])
def test_refused_kms_during_a_flush_leaks_nothing(
    code: str,
    kms_key: str,
    aws_client: Callable[..., Any],
    sqlite_engine: sa.Engine,
    debug_logs: Capture,
    secrets: Secrets,
) -> None:
    """KMS refusing Encrypt during an ORM flush: the error and every DEBUG log line are clean."""
    client = aws_client("kms", retries={"mode": "standard", "max_attempts": 2})
    client.meta.events.register("before-send.kms.Encrypt", _answer_with(code))
    master = _recording(kms_key, client=client)
    fieldcrypt.register(Keyring("pii", master, fieldcrypt.MemoryKeyStore()))
    Base.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add(Person(id=1, name="a", ssn=SSN, note=NOTE))
        with pytest.raises(sa.exc.StatementError) as caught:
            session.commit()
    assert isinstance(caught.value.orig, fieldcrypt.KeyAccessError)
    assert caught.value.orig.code == code
    assert master.wrapped  # a data key was made and sent to KMS (which refused to wrap it)
    for data_key in master.wrapped:
        secrets.key(data_key, "data key sent to Encrypt")
    secrets.plaintext(*PLAINTEXTS)
    secrets.assert_exception_clean(caught.value)
    secrets.assert_records_clean(debug_logs.records)


def test_unreachable_kms_leaks_nothing(tmp_path: Path, debug_logs: Capture, secrets: Secrets) -> None:
    """KMS unreachable (nothing listens): KeyAccessError; no plaintext in the error chain or the logs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    master = _recording(
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        endpoint_url=f"http://127.0.0.1:{port}",
        max_attempts=2,
        connect_timeout=0.5,
    )
    keyring = Keyring("pii", master, fieldcrypt.MemoryKeyStore())
    with pytest.raises(fieldcrypt.KeyAccessError) as caught:
        keyring.encrypt(SSN, PLACE)
    secrets.plaintext(*PLAINTEXTS)
    for data_key in master.wrapped:
        secrets.key(data_key, "data key sent to Encrypt")
    # Not frame locals: the value being encrypted is an argument of Keyring.encrypt's frame, and
    # the data key KMS never wrapped (it encrypted nothing) is one of _create_key's.
    secrets.assert_exception_clean(caught.value)
    secrets.assert_records_clean(debug_logs.records)
