"""KmsMasterKey against moto's server over HTTP: MRK regions, call counts, injected KMS failures."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.awsrequest import AWSResponse

import fieldcrypt
from fieldcrypt import Keyring, KmsMasterKey, Place
from fieldcrypt.testing import KmsCallCounter

SSN = Place("patients", "ssn")


def test_arn_validation_happens_at_construction(aws_client: Callable[..., Any]) -> None:
    """Aliases and single-region keys used from another region are refused with what to do."""
    client = aws_client("kms", "us-east-1")
    with pytest.raises(fieldcrypt.ConfigurationError, match="aliases are not accepted"):
        KmsMasterKey("arn:aws:kms:us-east-1:123456789012:alias/pii", client=client)
    with pytest.raises(fieldcrypt.ConfigurationError, match="is not a multi-region key"):
        KmsMasterKey(
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", region="us-west-2"
        )
    with pytest.raises(fieldcrypt.ConfigurationError, match="client is for us-east-1"):
        KmsMasterKey(
            "arn:aws:kms:us-west-2:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab", client=client
        )


def test_round_trip_under_a_kms_key(kms_key: str, aws_client: Callable[..., Any]) -> None:
    """Values encrypt and decrypt through a KMS-wrapped data key; the store holds only the wrap."""
    master = KmsMasterKey(kms_key, client=aws_client("kms", "us-east-1"))
    keyring = Keyring("pii", master, fieldcrypt.MemoryKeyStore())
    blob = keyring.encrypt("123-45-6789", SSN)
    assert keyring.decrypt_str(blob, SSN) == "123-45-6789"
    (record,) = keyring.records(fieldcrypt.Purpose.ENCRYPTION)
    assert list(record.wraps) == [kms_key]
    assert b"123-45-6789" not in blob


def test_mrk_reader_in_replica_region_calls_only_that_region(
    mrk: dict[str, str], aws_client: Callable[..., Any], request_log: Any, sqlite_engine: sa.Engine
) -> None:
    """A us-east-1 writer's values decrypt in us-west-2 through the replica: no cross-region call."""
    store = fieldcrypt.SqlKeyStore(sqlite_engine)
    store.create_table()
    east = request_log.attach(aws_client("kms", "us-east-1"))
    writer = Keyring("pii", KmsMasterKey(mrk["us-east-1"], client=east), store)
    blobs = [writer.encrypt(f"{i:03d}-45-6789", SSN) for i in range(20)]
    request_log.calls.clear()

    west = request_log.attach(aws_client("kms", "us-west-2"))
    # Configured with the primary's ARN, as an app deployed to both regions would be.
    reader = Keyring(
        "pii",
        KmsMasterKey(mrk["us-east-1"], region="us-west-2", client=west),
        fieldcrypt.SqlKeyStore(sqlite_engine),
    )
    assert [reader.decrypt_str(b, SSN) for b in blobs] == [f"{i:03d}-45-6789" for i in range(20)]
    assert request_log.operations() == ["Decrypt"]
    for _operation, region, arns in request_log.calls:
        assert region == "us-west-2"
        assert arns
        assert all(":us-west-2:" in arn for arn in arns), arns


def _before_send_error(code: str, times: int, status: int = 400) -> tuple[Callable[..., Any], list[int]]:
    """A botocore before-send hook answering the first `times` requests with a KMS error."""
    seen = [0]

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        seen[0] += 1
        if seen[0] > times:
            return None
        body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()

        class Raw:
            def stream(self, *args: Any, **kwargs: Any) -> Any:
                yield body

        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, Raw())

    return hook, seen


def test_throttling_is_retried_and_succeeds(kms_key: str, aws_client: Callable[..., Any]) -> None:
    """Two injected ThrottlingExceptions are retried by botocore's standard mode; the write succeeds."""
    client = aws_client("kms", "us-east-1", retries={"mode": "standard", "max_attempts": 5})
    hook, seen = _before_send_error("ThrottlingException", times=2)
    client.meta.events.register("before-send.kms.Encrypt", hook)
    keyring = Keyring("pii", KmsMasterKey(kms_key, client=client), fieldcrypt.MemoryKeyStore())
    assert keyring.decrypt_str(keyring.encrypt("x", SSN), SSN) == "x"
    assert seen[0] == 4  # two throttled, then the anchor's Encrypt and the data key's


def test_throttling_after_retries_is_a_key_access_error(kms_key: str, aws_client: Callable[..., Any]) -> None:
    """Throttling that outlasts the retries raises KeyAccessError saying so, and stores nothing."""
    client = aws_client("kms", "us-east-1", retries={"mode": "standard", "max_attempts": 3})
    hook, seen = _before_send_error("ThrottlingException", times=100)
    client.meta.events.register("before-send.kms.Encrypt", hook)
    store = fieldcrypt.MemoryKeyStore()
    keyring = Keyring("pii", KmsMasterKey(kms_key, client=client), store)
    with pytest.raises(fieldcrypt.KeyAccessError, match="ThrottlingException") as caught:
        keyring.encrypt("x", SSN)
    assert caught.value.code == "ThrottlingException"
    assert seen[0] >= 3  # retried (botocore counts max_attempts slightly differently across versions)
    assert store.list("pii") == []


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        ("AccessDeniedException", "grant kms:Encrypt on the key"),
        ("DisabledException", "the key is disabled: enable it"),
        ("NotFoundException", "replicate it here"),
        ("KMSInvalidStateException", "pending deletion"),
    ],
)
def test_key_errors_are_specific_and_store_nothing(
    kms_key: str, aws_client: Callable[..., Any], code: str, advice: str
) -> None:
    """Access denied, disabled, missing or pending-deletion keys raise KeyAccessError with the fix."""
    client = aws_client("kms", "us-east-1")
    hook, _ = _before_send_error(code, times=100)
    client.meta.events.register("before-send.kms.Encrypt", hook)
    store = fieldcrypt.MemoryKeyStore()
    keyring = Keyring("pii", KmsMasterKey(kms_key, client=client), store)
    with pytest.raises(fieldcrypt.KeyAccessError, match=advice) as caught:
        keyring.encrypt("123-45-6789", SSN)
    assert caught.value.code == code
    assert caught.value.master_key_id == kms_key
    assert "123-45-6789" not in str(caught.value)
    assert store.list("pii") == []


def test_denied_decrypt_is_key_access_not_opaque(kms_key: str, aws_client: Callable[..., Any]) -> None:
    """A reader denied kms:Decrypt gets KeyAccessError (fix the policy), not DecryptionError."""
    store = fieldcrypt.MemoryKeyStore()
    blob = Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store).encrypt("x", SSN)
    client = aws_client("kms")
    client.meta.events.register(
        "before-send.kms.Decrypt", _before_send_error("AccessDeniedException", 100)[0]
    )
    with pytest.raises(fieldcrypt.KeyAccessError, match="grant kms:Decrypt"):
        Keyring("pii", KmsMasterKey(kms_key, client=client), store).decrypt(blob, SSN)


def test_swapped_rows_under_kms_fail_opaquely(kms_key: str, aws_client: Callable[..., Any]) -> None:
    """KMS refuses a wrap presented under another data key's context: DecryptionError."""
    store = fieldcrypt.MemoryKeyStore()
    keyring = Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    a = keyring.encrypt("a", SSN)
    record_b = keyring.rotate()
    b = keyring.encrypt("b", SSN)
    record_a = store.get(keyring.key_id_of(a))
    assert record_a is not None
    store.update(record_b.evolve(wraps=record_a.wraps))
    keyring.cache.clear()
    with pytest.raises(fieldcrypt.DecryptionError):
        keyring.decrypt(b, SSN)


def test_cold_start_from_eight_threads_makes_one_kms_call(
    kms_key: str, aws_client: Callable[..., Any]
) -> None:
    """Eight threads decrypting at once on a cold cache share one KMS Decrypt."""
    store = fieldcrypt.MemoryKeyStore()
    blob = Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store).encrypt("x", SSN)
    counter = KmsCallCounter()
    reader = Keyring("pii", KmsMasterKey(kms_key, client=counter.attach(aws_client("kms"))), store)
    barrier = threading.Barrier(8)
    results: list[bytes] = []

    def work() -> None:
        barrier.wait()
        results.append(reader.decrypt(blob, SSN))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"x"] * 8
    assert dict(counter.calls) == {"Decrypt": 1}


_PROCESS = textwrap.dedent(
    """
    import json, sys
    import boto3, sqlalchemy as sa
    from botocore.config import Config
    import fieldcrypt
    from fieldcrypt.testing import KmsCallCounter

    mode, db, endpoint, arn, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    client = boto3.client("kms", region_name="us-east-1", endpoint_url=endpoint,
                          config=Config(retries={"mode": "standard"}))
    counter = KmsCallCounter()
    counter.attach(client)
    store = fieldcrypt.SqlKeyStore(sa.create_engine(f"sqlite:///{db}"))
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.KmsMasterKey(arn, client=client), store)
    place = fieldcrypt.Place("users", "ssn")
    path = db + ".values"
    if mode == "write":
        with open(path, "wb") as out:
            for i in range(n):
                out.write(keyring.encrypt(f"{i:09d}", place))
    else:
        data = open(path, "rb").read()
        size = 9 + 49
        for i in range(n):
            assert keyring.decrypt(data[i * size:(i + 1) * size], place) == f"{i:09d}".encode()
    print(json.dumps(counter.total))
    """
)


def test_100k_values_cost_at_most_two_kms_calls_per_process(
    kms_key: str, moto_endpoint: str, tmp_path: Path
) -> None:
    """Writing 100,000 values, then reading them in a fresh process, costs <= 2 KMS calls each."""
    script = tmp_path / "proc.py"
    script.write_text(_PROCESS)
    db = str(tmp_path / "keys.db")
    calls = {}
    for mode in ("write", "read"):
        done = subprocess.run(
            [sys.executable, str(script), mode, db, moto_endpoint, kms_key, "100000"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        calls[mode] = json.loads(done.stdout)
    assert calls == {"write": 2, "read": 1}  # anchor + data key; the bound is <= 2 per process


def test_unreachable_kms_is_a_key_access_error() -> None:
    """A KMS endpoint nobody listens on gives KeyAccessError saying it is unreachable."""
    import socket

    with socket.socket() as sock:  # find a free loopback port, then leave it closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    master = KmsMasterKey(
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        endpoint_url=f"http://127.0.0.1:{port}",
    )
    store = fieldcrypt.MemoryKeyStore()
    with pytest.raises(fieldcrypt.KeyAccessError, match="unreachable"):
        Keyring("pii", master, store).encrypt("x", SSN)
    assert store.list("pii") == []
