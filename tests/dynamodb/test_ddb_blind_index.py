"""Blind indexes backing a GSI: equality lookups on an encrypted attribute, kept in step on every write."""

from __future__ import annotations

from typing import Any

import pytest
from ddb_models import Patient

import fieldcrypt
from fieldcrypt import Place, Purpose

pytestmark = pytest.mark.usefixtures("tables")


def ids(found: Any) -> list[str]:
    return sorted(p.patient_id for p in found)


def test_lookup_through_the_gsi_after_save_and_batch_write() -> None:
    """Items saved or batch-written are found by SSN through the index, with the normalizer applied."""
    Patient("p-1", ssn="123-45-6789").save()
    with Patient.batch_write() as batch:
        batch.save(Patient("p-2", ssn="987-65-4321"))
        batch.save(Patient("p-3", ssn="123-45-6789"))
    assert ids(Patient.lookup("ssn", "123-45-6789")) == ["p-1", "p-3"]
    assert ids(Patient.lookup(Patient.ssn, "123456789")) == ["p-1", "p-3"]  # normalizer strips dashes
    assert ids(Patient.lookup("ssn", "000-00-0000")) == []


def test_update_moves_and_removes_the_token() -> None:
    """update() rewrites the token with the value; setting None removes both."""
    patient = Patient("p-1", ssn="123-45-6789")
    patient.save()
    patient.update(actions=[Patient.ssn.set("555-55-5555")])
    assert ids(Patient.lookup("ssn", "123-45-6789")) == []
    assert ids(Patient.lookup("ssn", "555-55-5555")) == ["p-1"]
    patient.update(actions=[Patient.ssn.remove()])
    assert ids(Patient.lookup("ssn", "555-55-5555")) == []
    assert Patient.get("p-1").ssn_bidx is None


def test_stored_token_follows_the_storage_rule(ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """The raw token is keyring.blind_index(codec bytes of the normalised value, Place(table, attribute)), binary."""
    Patient("p-1", ssn="123-45-6789").save()
    item = ddb.get_item(TableName="patients", Key={"patient_id": {"S": "p-1"}})["Item"]
    assert item["ssn_bidx"] == {"B": keyring.blind_index(b"123456789", Place("patients", "ssn"))}
    assert len(item["ssn_bidx"]["B"]) == keyring.blind_index_bytes


def test_lookup_during_blind_index_rotation(keyring: fieldcrypt.Keyring) -> None:
    """After a new blind-index key, lookups query both tokens, so old and new items are found."""
    Patient("p-old", ssn="123-45-6789").save()
    keyring.rotate(Purpose.BLIND_INDEX)
    Patient("p-new", ssn="123-45-6789").save()
    old, new = (Patient.get(i).ssn_bidx for i in ("p-old", "p-new"))
    assert old != new
    assert ids(Patient.lookup("ssn", "123-45-6789")) == ["p-new", "p-old"]


def test_lookup_never_creates_a_key(keyring: fieldcrypt.Keyring) -> None:
    """A lookup before any write finds nothing and creates no blind-index key (reads never write)."""
    assert ids(Patient.lookup("ssn", "123-45-6789")) == []
    assert keyring.records(Purpose.BLIND_INDEX) == []


def test_lookup_of_a_wrong_type_is_refused() -> None:
    """Looking up a value of the wrong type raises TypeError naming the attribute."""
    with pytest.raises(TypeError, match=r"^patients.ssn: expected str, got int$"):
        list(Patient.lookup("ssn", 123456789))
    with pytest.raises(fieldcrypt.ConfigurationError, match="Patient has no encrypted attribute 'name'"):
        list(Patient.lookup("name", "Ada"))
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"Patient.weight has no BlindIndexAttribute"):
        list(Patient.lookup("weight", 70))
