"""DynamoDB's metrics: planted blind-index matches dropped, re-encryption progress (moto)."""

from __future__ import annotations

from typing import Any

import pytest
from ddb_models import Patient
from test_ddb_index_rotation import SSNS, encryptor
from test_ddb_verified_lookup import ATTACKER, VICTIM, _plant

import fieldcrypt
from fieldcrypt import Purpose
from fieldcrypt.dynamodb.reencrypt import Reencryptor
from fieldcrypt.dynamodb.reindex import reindex
from metrics_helpers import Recorder, attrs

pytestmark = pytest.mark.usefixtures("tables")


def test_a_planted_match_dropped_by_lookup_is_counted(recorder: Recorder, ddb: Any) -> None:
    """Model.lookup drops the item carrying the victim's copied token: blind_index.dropped counts it by table and attribute."""
    Patient("victim", ssn=VICTIM).save()
    Patient("attacker", ssn=ATTACKER).save()
    _plant(ddb)
    before = recorder.collect()
    assert [p.patient_id for p in Patient.lookup("ssn", VICTIM)] == ["victim"]
    assert recorder.delta(before)["fieldcrypt.blind_index.dropped"] == {
        attrs(table="patients", column="ssn"): 1
    }


def test_reencryption_progress_counts_items_processed_and_failed(
    recorder: Recorder, ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """A re-encryption of 6 items, one tampered, counts 6 processed and 1 failed under operation reencrypt."""
    for i in range(6):
        Patient(f"p-{i}", ssn=f"000-00-000{i}").save()
    item = ddb.get_item(TableName="patients", Key={"patient_id": {"S": "p-3"}})["Item"]
    tampered = bytearray(item["ssn"]["B"])
    assert b"000-00-0003" not in tampered  # stored as ciphertext
    tampered[-1] ^= 1
    ddb.update_item(
        TableName="patients",
        Key={"patient_id": {"S": "p-3"}},
        UpdateExpression="SET ssn = :v",
        ExpressionAttributeValues={":v": {"B": bytes(tampered)}},
    )
    keyring.rotate()
    before = recorder.collect()
    counts = Reencryptor(ddb, "patients", "ssn", keyring=keyring, batch_size=4).run()
    assert (counts["scanned"], counts["failed"]) == (6, 1)
    where = {"operation": "reencrypt", "table": "patients", "column": "ssn"}
    assert recorder.delta(before)["fieldcrypt.rotation.rows"] == {
        attrs(**where, outcome="processed"): 6,
        attrs(**where, outcome="failed"): 1,
    }


def test_reindexing_counts_items_processed(recorder: Recorder, ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """A DynamoDB reindex after an index-key rotation counts each item under operation reindex; a dry run nothing."""
    for patient_id, ssn in SSNS.items():
        Patient(patient_id, ssn=ssn).save()
    keyring.rotate(Purpose.BLIND_INDEX)
    before = recorder.collect()
    reindex(ddb, encryptor(ddb), "ssn", dry_run=True)
    assert "fieldcrypt.rotation.rows" not in recorder.delta(before)
    assert reindex(ddb, encryptor(ddb), "ssn")["reindexed"] == len(SSNS)
    assert recorder.delta(before)["fieldcrypt.rotation.rows"] == {
        attrs(operation="reindex", table="patients", column="ssn", outcome="processed"): len(SSNS)
    }


def test_adoption_progress_counts_items_under_operation_encrypt(
    recorder: Recorder, ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """An adoption of 5 plaintext items, one of another type, counts 5 processed and 1 failed under operation encrypt."""
    from fieldcrypt.dynamodb import EncryptedField
    from fieldcrypt.dynamodb.adopt import Adopter

    for i in range(4):
        ddb.put_item(
            TableName="patients", Item={"patient_id": {"S": f"p-{i}"}, "ssn": {"S": f"000-00-000{i}"}}
        )
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "p-n"}, "ssn": {"N": "5"}})
    before = recorder.collect()
    counts = Adopter(ddb, "patients", "ssn", field=EncryptedField("S", keyring=keyring), batch_size=3).run()
    assert (counts["encrypted"], counts["failed"]) == (4, 1)
    where = {"operation": "encrypt", "table": "patients", "column": "ssn"}
    assert recorder.delta(before)["fieldcrypt.rotation.rows"] == {
        attrs(**where, outcome="processed"): 5,
        attrs(**where, outcome="failed"): 1,
    }
