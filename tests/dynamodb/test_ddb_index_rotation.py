"""Blind-index rotation on DynamoDB: tokens are rebuilt under the new key, lookups work after every
step, and the old key retires only once the attribute has moved (then lookups query one key)."""

from __future__ import annotations

from typing import Any

import pytest
from ddb_models import Patient

import fieldcrypt
from fieldcrypt import ConfigurationError, Place, Purpose, Status
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.dynamodb.reindex import reindex
from fieldcrypt.rotation import admin

pytestmark = pytest.mark.usefixtures("tables")
SSNS = {"p-1": "123-45-6789", "p-2": "987-65-4321"}


def assert_lookups_work() -> None:
    """Each patient is found by its SSN with and without dashes, and only it."""
    for patient_id, ssn in SSNS.items():
        assert [p.patient_id for p in Patient.lookup("ssn", ssn)] == [patient_id]
        assert [p.patient_id for p in Patient.lookup("ssn", ssn.replace("-", ""))] == [patient_id]


def encryptor(ddb: Any) -> ItemEncryptor:
    """The patients table as the model declares it: ssn (S) with its index and the model's normalizer."""
    field = EncryptedField(
        "S", keyring="pii", index_attribute="ssn_bidx", normalizer=Patient.ssn_bidx.normalizer
    )
    return ItemEncryptor.for_table(ddb, "patients", {"ssn": field})


def test_reindex_rebuilds_tokens_and_then_the_old_key_retires(ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """Rotate, reindex, retire: lookups work at every step; afterwards every token is the new key's and one key is queried."""
    for patient_id, ssn in SSNS.items():
        Patient(patient_id, ssn=ssn).save()
    assert_lookups_work()
    [old] = keyring.records(Purpose.BLIND_INDEX)
    keyring.rotate(Purpose.BLIND_INDEX)
    assert_lookups_work()
    with pytest.raises(ConfigurationError, match=r"still used by patients\.ssn"):
        admin.retire(keyring, old.key_id)

    counts = reindex(ddb, encryptor(ddb), "ssn")
    assert (counts["scanned"], counts["reindexed"], counts["failed"]) == (2, 2, 0)
    assert_lookups_work()
    assert reindex(ddb, encryptor(ddb), "ssn")["current"] == 2  # a rerun writes nothing

    retired, kept = admin.retire_unused_index_keys(keyring)
    assert (retired, kept) == ([old.key_id], {})
    keyring.refresh()
    assert [r.status for r in keyring.records(Purpose.BLIND_INDEX)] == [Status.RETIRED, Status.ACTIVE]
    assert_lookups_work()
    assert len(encryptor(ddb).search_tokens("ssn", {"S": "123-45-6789"})) == 1  # one key queried now
    for patient_id, ssn in SSNS.items():
        item = ddb.get_item(TableName="patients", Key={"patient_id": {"S": patient_id}})["Item"]
        assert ssn.encode() not in bytes(item["ssn"]["B"])  # ciphertext only
        digits = ssn.replace("-", "").encode()
        assert item["ssn_bidx"] == {"B": keyring.blind_index(digits, Place("patients", "ssn"))}


def test_reindex_refuses_another_normalizer(ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """An encryptor without the model's normalizer is refused before any token is written."""
    Patient("p-1", ssn="123-45-6789").save()
    before = ddb.get_item(TableName="patients", Key={"patient_id": {"S": "p-1"}})["Item"]["ssn_bidx"]
    keyring.rotate(Purpose.BLIND_INDEX)
    bare = ItemEncryptor.for_table(
        ddb, "patients", {"ssn": EncryptedField("S", keyring="pii", index_attribute="ssn_bidx")}
    )
    with pytest.raises(ConfigurationError, match="normalizer none"):
        reindex(ddb, bare, "ssn")
    after = ddb.get_item(TableName="patients", Key={"patient_id": {"S": "p-1"}})["Item"]["ssn_bidx"]
    assert after == before
    assert [p.patient_id for p in Patient.lookup("ssn", "123456789")] == ["p-1"]
