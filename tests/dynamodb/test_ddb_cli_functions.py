"""The functions the fieldcrypt CLI calls for dynamodb: targets (run_reencrypt, run_status), and status counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ddb_models import Patient

import fieldcrypt
from fieldcrypt.cli.dynamodb import run_reencrypt, run_status
from fieldcrypt.dynamodb import EncryptedField
from fieldcrypt.dynamodb.adopt import Adopter
from fieldcrypt.dynamodb.status import table_status

pytestmark = pytest.mark.usefixtures("tables")


@pytest.fixture
def two_generations(keyring: fieldcrypt.Keyring) -> tuple[str, str]:
    """Three patients under an old data key, two under the current one; returns (old, current) key ids."""
    for i in range(3):
        Patient(f"old-{i}", ssn=f"111-11-111{i}").save()
    old = keyring.current_key_id()
    keyring.rotate()
    for i in range(2):
        Patient(f"new-{i}", ssn=f"222-22-222{i}").save()
    return old, keyring.current_key_id()


def options(moto_endpoint: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "segment": None,
        "batch_size": 100,
        "max_kms_calls_per_second": None,
        "dry_run": False,
        "endpoint_url": moto_endpoint,
        "region": "us-east-1",
        "checkpoint_dir": None,
        "progress": None,
    }
    return base | overrides


def test_status_counts_per_data_key_and_master_key(
    two_generations: tuple[str, str], keyring: fieldcrypt.Keyring, moto_endpoint: str
) -> None:
    """status reports values per data key and master key, and what is left to re-encrypt."""
    old, current = two_generations
    status = run_status(
        "dynamodb:patients.ssn", keyring=keyring, endpoint_url=moto_endpoint, region="us-east-1"
    )
    master = keyring.master_key.key_id
    data = status.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "target": "dynamodb:patients.ssn",
        "table": "patients",
        "column": "ssn",
        "rows": 5,
        "encrypted": 5,
        "null": 0,
        "plaintext": 0,
        "undecryptable": {"destroyed_key": 0, "unknown_key": 0, "failed": 0},
        "undecryptable_rows": [],
        "plaintext_rows": [],
        "unknown_key_rows": [],
        "current_data_key": current,
        "not_on_current_key": 3,
        "by_data_key": {old: 3, current: 2},
        "by_master_key": {master: 5},
        "unused_data_keys": [],
        "verified": True,
        "damaged_key_rows": [],
    }


def test_status_lists_problems_by_key(
    two_generations: tuple[str, str], keyring: fieldcrypt.Keyring, ddb: Any, request_log: Any
) -> None:
    """Plaintext, absent and undecryptable values are counted; undecryptable items are listed by key only; nothing is written."""
    stolen = ddb.get_item(TableName="patients", Key={"patient_id": {"S": "old-0"}})["Item"]["ssn"]
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "moved"}, "ssn": stolen})
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "plain"}, "ssn": {"S": "123-45-6789"}})
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "empty"}})
    request_log.attach(ddb)
    status = table_status(ddb, "patients", "ssn", keyring=keyring)
    assert (status.rows, status.plaintext, status.null, status.failed) == (8, 1, 1, 1)
    assert status.undecryptable_rows == ["'moved'"]
    assert status.work_remains
    assert "123-45-6789" not in json.dumps(status.as_dict())
    assert set(request_log.operations()) == {"DescribeTable", "Scan"}


def test_status_tells_binary_plaintext_from_ciphertext_as_adoption_does(
    ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """A scan_image not yet adopted (binary plaintext) and a NULL count as plaintext and null, a truncated ciphertext as failed, as encrypt-column sees them."""
    Patient("enc", scan_image=b"\x89PNG encrypted").save()
    ciphertext = bytes(
        ddb.get_item(TableName="patients", Key={"patient_id": {"S": "enc"}})["Item"]["scan_image"]["B"]
    )
    raw = {"plain": {"B": b"\x89PNG plaintext"}, "null": {"NULL": True}, "cut": {"B": ciphertext[:20]}}
    for patient, value in raw.items():
        ddb.put_item(TableName="patients", Item={"patient_id": {"S": patient}, "scan_image": value})
    status = table_status(ddb, "patients", "scan_image", keyring=keyring, kind="B")
    assert (status.rows, status.encrypted, status.plaintext, status.null, status.failed) == (4, 1, 1, 1, 1)
    assert (status.plaintext_rows, status.undecryptable_rows) == (["'plain'"], ["'cut'"])
    adopted = Adopter(ddb, "patients", "scan_image", field=EncryptedField("B", keyring=keyring)).run()
    assert (adopted["encrypted"], adopted["already_encrypted"], adopted["absent"], adopted["failed"]) == (
        1,
        1,
        1,
        1,
    )
    after = table_status(ddb, "patients", "scan_image", keyring=keyring)
    assert (after.encrypted, after.plaintext, after.null, after.failed) == (2, 0, 1, 1)


def test_status_counts_a_key_under_each_of_its_master_keys(
    two_generations: tuple[str, str], keyring: fieldcrypt.Keyring, ddb: Any
) -> None:
    """A data key wrapped under two master keys (mid-rewrap) counts under both."""
    old, _ = two_generations
    record = keyring.key_store.get(old)
    assert record is not None
    keyring.key_store.update(record.evolve(wraps={**record.wraps, "local:second": b"w"}))
    status = table_status(ddb, "patients", "ssn", keyring=keyring)
    assert status.as_dict()["by_master_key"] == {keyring.master_key.key_id: 5, "local:second": 3}


def test_run_reencrypt_whole_table(
    two_generations: tuple[str, str], keyring: fieldcrypt.Keyring, moto_endpoint: str
) -> None:
    """Without a segment the whole table moves; status then shows nothing left, progress counted up to every item."""
    seen: list[int] = []
    counts = run_reencrypt(
        "dynamodb:patients.ssn", keyring=keyring, **options(moto_endpoint, batch_size=2, progress=seen.append)
    )
    assert counts["reencrypted"] == 3
    assert counts["current"] == 2
    assert seen == [2, 4, 5]  # items scanned so far, after each page
    assert (counts["action"], counts["target"], counts["segment"]) == (
        "reencrypt",
        "dynamodb:patients.ssn",
        "0/1",
    )
    status = run_status(
        "dynamodb:patients.ssn", keyring=keyring, endpoint_url=moto_endpoint, region="us-east-1"
    )
    assert (status.not_current, status.encrypted, status.work_remains) == (0, 5, False)


def test_run_reencrypt_by_segments(
    two_generations: tuple[str, str], keyring: fieldcrypt.Keyring, moto_endpoint: str, tmp_path: Path
) -> None:
    """--segment i/N jobs (0-based) together cover the table; a dry run first changes nothing."""
    dry = run_reencrypt("dynamodb:patients.ssn", keyring=keyring, **options(moto_endpoint, dry_run=True))
    assert dry["reencrypted"] == 3
    scanned = 0
    for i in range(3):
        opts = options(
            moto_endpoint, segment=(i, 3), checkpoint_dir=str(tmp_path), max_kms_calls_per_second=50.0
        )
        scanned += run_reencrypt("dynamodb:patients.ssn", keyring=keyring, **opts)["scanned"]
    assert scanned == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"dynamodb-patients.ssn.{i}-of-3.json" for i in range(3)
    ]
    status = run_status(
        "dynamodb:patients.ssn", keyring=keyring, endpoint_url=moto_endpoint, region="us-east-1"
    )
    assert status.not_current == 0


@pytest.mark.parametrize(
    ("target", "overrides", "message"),
    [
        ("dynamodb:patients", {}, "write dynamodb:TABLE.ATTRIBUTE"),
        ("dynamodb:patients.ssn", {"segment": (3, 3)}, "segment 3/3 is out of range"),
        ("dynamodb:patients.ssn", {"batch_size": 0}, "batch size must be between 1 and 10000"),
        ("dynamodb:ghosts.ssn", {}, "table 'ghosts' does not exist in us-east-1"),
    ],
)
def test_run_reencrypt_bad_input(
    target: str, overrides: dict[str, Any], message: str, keyring: fieldcrypt.Keyring, moto_endpoint: str
) -> None:
    """Bad targets and options fail with a specific ConfigurationError before anything is touched."""
    with pytest.raises(fieldcrypt.ConfigurationError, match=message):
        run_reencrypt(target, keyring=keyring, **options(moto_endpoint, **overrides))
