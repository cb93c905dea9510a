"""Re-encryption of a DynamoDB attribute: parallel segments, conditional writes, checkpoints, rate limit."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from ddb_models import Patient

import fieldcrypt
from fieldcrypt.dynamodb.reencrypt import Reencryptor

pytestmark = pytest.mark.usefixtures("tables")
N = 20


class Stop(Exception):
    """Stands in for a crash or an operator's Ctrl-C."""


def ssn(i: int) -> str:
    return f"000-00-{i:04d}"


@pytest.fixture
def old_values(keyring: fieldcrypt.Keyring) -> str:
    """N patients written under one data key, then a rotation; returns the old key id."""
    with Patient.batch_write() as batch:
        for i in range(N):
            batch.save(Patient(f"p-{i:02d}", ssn=ssn(i)))
    old = keyring.current_key_id()
    keyring.rotate()
    return old


def key_ids(ddb: Any, keyring: fieldcrypt.Keyring) -> Counter[str]:
    """How many stored ssn values name each data key (raw scan)."""
    items = ddb.scan(TableName="patients", ConsistentRead=True)["Items"]
    return Counter(keyring.key_id_of(item["ssn"]["B"]) for item in items if "B" in item.get("ssn", {}))


def assert_all_readable() -> None:
    assert sorted((p.patient_id, p.ssn) for p in Patient.scan()) == [(f"p-{i:02d}", ssn(i)) for i in range(N)]


def test_moves_every_value_to_the_current_key(old_values: str, ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """A full run leaves every value under the current key, still bound to its item and readable."""
    counts = Reencryptor(ddb, "patients", "ssn", keyring=keyring, batch_size=7).run()
    assert counts["scanned"] == N
    assert counts["reencrypted"] == N
    assert counts["failed"] == 0
    assert key_ids(ddb, keyring) == Counter({keyring.current_key_id(): N})
    assert_all_readable()
    again = Reencryptor(ddb, "patients", "ssn", keyring=keyring).run()
    assert again["reencrypted"] == 0
    assert again["current"] == N


def test_parallel_segments_on_worker_threads(old_values: str, ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """Four segments on two threads together cover the table exactly once; progress counts up to N."""
    seen: list[int] = []
    job = Reencryptor(
        ddb, "patients", "ssn", keyring=keyring, total_segments=4, batch_size=3, progress=seen.append
    )
    counts = job.run(workers=2)
    assert sorted(seen) == seen
    assert seen[-1] == N
    assert counts["scanned"] == N
    assert counts["reencrypted"] == N
    assert key_ids(ddb, keyring) == Counter({keyring.current_key_id(): N})


def test_segments_run_as_separate_jobs(old_values: str, ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """Each segment i/3 can run as its own job; only after all three is the table done."""
    jobs = [Reencryptor(ddb, "patients", "ssn", keyring=keyring, total_segments=3).run([i]) for i in range(3)]
    assert sum(j["scanned"] for j in jobs) == N
    assert all(j["scanned"] < N for j in jobs)
    assert key_ids(ddb, keyring) == Counter({keyring.current_key_id(): N})


def test_interrupted_parallel_job_resumes_from_its_checkpoints(
    old_values: str, ddb: Any, keyring: fieldcrypt.Keyring, tmp_path: Path
) -> None:
    """A two-segment job on two threads, interrupted, resumes after its checkpointed pages (its progress
    starting from them) and finishes."""

    def stop_after_each_first_page(scanned: int) -> None:
        # Every segment stops after its own first page, whatever the threads' timing: a single
        # global stop let the other thread finish its whole segment, which under load sometimes
        # left no item behind to resume.
        raise Stop

    def job(**extra: Any) -> Reencryptor:
        return Reencryptor(
            ddb,
            "patients",
            "ssn",
            keyring=keyring,
            total_segments=2,
            batch_size=3,
            checkpoint_dir=str(tmp_path),
            **extra,
        )

    with pytest.raises(Stop):
        job(progress=stop_after_each_first_page).run(workers=2)
    assert 0 < key_ids(ddb, keyring)[old_values] < N
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dynamodb-patients.ssn.0-of-2.json", "dynamodb-patients.ssn.1-of-2.json"]
    seen: list[int] = []
    starts: list[int] = []
    second = job(progress=seen.append, resumed=starts.append).run(workers=2)
    assert second["segments_resumed"] >= 1
    assert second["scanned"] < N
    # The resumed run scanned fewer than N items, yet its progress ends at N: it starts from the
    # items its checkpoints say earlier runs scanned, told once before any page (a meter's
    # start_at, so the rate counts this run's items only), and never steps back.
    assert starts == [N - second["scanned"]] == seen[:1]
    assert seen == sorted(seen)
    assert seen[-1] == N
    assert key_ids(ddb, keyring) == Counter({keyring.current_key_id(): N})
    saved = [json.loads((tmp_path / name).read_text()) for name in files]
    assert all(s["done"] and s["start"] is None for s in saved)
    assert sum(s["counts"]["reencrypted"] for s in saved) == N  # each item moved exactly once over both runs
    assert sum(s["counts"]["scanned"] for s in saved) == N
    third = job().run(workers=2)
    assert third["segments_already_done"] == 2
    assert third["scanned"] == 0
    assert_all_readable()


def test_crash_mid_page_is_harmless_on_resume(
    old_values: str, ddb: Any, keyring: fieldcrypt.Keyring, tmp_path: Path
) -> None:
    """A crash between two writes of a page: the rerun re-reads the page, skips what is done, finishes the rest."""
    writes: list[int] = []

    def crash_on_third_write(**_: Any) -> None:
        writes.append(1)
        if len(writes) == 3:
            raise Stop

    ddb.meta.events.register("before-call.dynamodb.UpdateItem", crash_on_third_write)
    with pytest.raises(Stop):
        Reencryptor(ddb, "patients", "ssn", keyring=keyring, batch_size=N, checkpoint_dir=str(tmp_path)).run()
    ddb.meta.events.unregister("before-call.dynamodb.UpdateItem", crash_on_third_write)
    counts = Reencryptor(
        ddb, "patients", "ssn", keyring=keyring, batch_size=N, checkpoint_dir=str(tmp_path)
    ).run()
    assert counts["current"] == 2
    assert counts["reencrypted"] == N - 2
    assert key_ids(ddb, keyring) == Counter({keyring.current_key_id(): N})
    assert_all_readable()


def test_concurrent_application_update_survives(
    old_values: str, ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """An application write between the job's read and its write wins: the conditional write fails and is not retried blindly."""
    raced: list[str] = []

    def application_writes_first(params: dict[str, Any], **_: Any) -> None:
        if not raced:
            patient_id = params["Key"]["patient_id"]["S"]
            raced.append(patient_id)
            patient = Patient.get(patient_id)
            patient.update(actions=[Patient.ssn.set("999-99-9999")])

    ddb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", application_writes_first)
    try:
        counts = Reencryptor(ddb, "patients", "ssn", keyring=keyring).run()
    finally:
        ddb.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", application_writes_first)
    assert counts["conflicts"] == 1
    assert counts["reencrypted"] == N - 1
    assert counts["current"] == 1
    assert Patient.get(raced[0]).ssn == "999-99-9999"
    assert key_ids(ddb, keyring) == Counter({keyring.current_key_id(): N})


def test_dry_run_writes_nothing(
    old_values: str, ddb: Any, keyring: fieldcrypt.Keyring, tmp_path: Path, request_log: Any
) -> None:
    """A dry run counts what would move but sends no write and leaves no checkpoint."""
    request_log.attach(ddb)
    counts = Reencryptor(
        ddb, "patients", "ssn", keyring=keyring, dry_run=True, checkpoint_dir=str(tmp_path)
    ).run()
    assert counts["reencrypted"] == N
    assert set(request_log.operations()) == {"DescribeTable", "Scan"}
    assert key_ids(ddb, keyring) == Counter({old_values: N})
    assert list(tmp_path.iterdir()) == []


def test_bad_values_are_counted_and_left_alone(
    old_values: str, ddb: Any, keyring: fieldcrypt.Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """Plaintext, tampered, non-v1 and absent values are counted and logged by key only; nothing is written to them."""
    put = {
        "x-plain": {"S": "123-45-6789"},
        "x-tampered": {
            "B": ddb.get_item(TableName="patients", Key={"patient_id": {"S": "p-00"}})["Item"]["ssn"]["B"]
        },
        "x-v9": {"B": b"\x09" + bytes(60)},
    }
    for patient_id, value in put.items():
        ddb.put_item(TableName="patients", Item={"patient_id": {"S": patient_id}, "ssn": value})
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "x-absent"}})
    with caplog.at_level(logging.WARNING, logger="fieldcrypt"):
        counts = Reencryptor(ddb, "patients", "ssn", keyring=keyring).run()
    assert (counts["plaintext"], counts["failed"], counts["absent"], counts["reencrypted"]) == (1, 2, 1, N)
    logged = sorted(r.getMessage() for r in caplog.records if r.name == "fieldcrypt")
    assert logged == [
        "fieldcrypt: cannot decrypt patients.ssn (row 'x-tampered') (left unchanged)",
        "fieldcrypt: patients.ssn row 'x-v9' is not a v1 ciphertext",
    ]
    for patient_id, value in put.items():
        assert (
            ddb.get_item(TableName="patients", Key={"patient_id": {"S": patient_id}})["Item"]["ssn"] == value
        )


def test_key_attribute_target_is_refused(ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """Naming a key attribute or a missing table is a configuration error."""
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"patients\.patient_id is a key attribute"):
        Reencryptor(ddb, "patients", "patient_id", keyring=keyring)
    with pytest.raises(fieldcrypt.ConfigurationError, match="table 'nope' does not exist in us-east-1"):
        Reencryptor(ddb, "nope", "ssn", keyring=keyring)


def test_rate_limit_applies_to_every_kms_request(
    ddb: Any, aws_client: Any, kms_key: str, request_log: Any, moto_endpoint: str
) -> None:
    """With a KMS master key, every KMS request of the job passes the limiter (and only those)."""
    kms = request_log.attach(aws_client("kms", "us-east-1"))
    master = fieldcrypt.KmsMasterKey(kms_key, client=kms)
    store = fieldcrypt.MemoryKeyStore()
    fieldcrypt.register(fieldcrypt.Keyring("pii", master, store), replace=True)
    for i in range(3):  # three generations of data keys
        Patient(f"p-{i}", ssn=ssn(i)).save()
        fieldcrypt.get_keyring("pii").rotate()
    fresh = fieldcrypt.Keyring("pii", master, store)  # a new process: nothing cached
    request_log.calls.clear()
    job = Reencryptor(ddb, "patients", "ssn", keyring=fresh, max_kms_calls_per_second=1000.0)
    counts = job.run()
    assert counts["reencrypted"] == 3
    kms_requests = [op for op in request_log.operations() if op in ("Decrypt", "Encrypt", "GenerateDataKey")]
    assert len(kms_requests) >= 4
    assert job.limiter is not None
    assert job.limiter.acquired == len(kms_requests)
    request_log.calls.clear()
    place = fieldcrypt.Place("t", "c")
    app = fieldcrypt.Keyring("pii", master, store)  # the application, on the same KMS client
    app.decrypt(fieldcrypt.get_keyring("pii").encrypt(b"x", place), place)
    assert "Decrypt" in request_log.operations()
    assert job.limiter.acquired == len(kms_requests)  # the application's KMS calls take no token
