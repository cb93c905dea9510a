"""DynamoDB blind-index matches are verified: a copied token never returns another item."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from ddb_models import Patient
from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import KeysOnlyProjection
from test_ddb_item_encryptor import patients

from ddb_shapes import blind_index_gsi, moto_meta
from fieldcrypt import ConfigurationError
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel

pytestmark = pytest.mark.usefixtures("tables")

VICTIM, ATTACKER = "111-11-1111", "222-22-2222"


def _plant(ddb: Any) -> None:
    """The attack: a writer copies the victim's blind-index token into the attacker's item."""
    token = ddb.get_item(TableName="patients", Key={"patient_id": {"S": "victim"}})["Item"]["ssn_bidx"]
    ddb.update_item(
        TableName="patients",
        Key={"patient_id": {"S": "attacker"}},
        UpdateExpression="SET ssn_bidx = :t",
        ExpressionAttributeValues={":t": token},
    )


def test_lookup_skips_an_item_carrying_a_copied_token(ddb: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Model.lookup for the victim's SSN returns the victim only; the planted item is reported by key."""
    Patient("victim", ssn=VICTIM).save()
    Patient("attacker", ssn=ATTACKER).save()
    _plant(ddb)
    raw = ddb.scan(TableName="patients")["Items"]
    assert len({bytes(i["ssn_bidx"]["B"]) for i in raw}) == 1  # the GSI now answers with both items
    with caplog.at_level(logging.WARNING, logger="fieldcrypt.audit"):
        assert [p.patient_id for p in Patient.lookup("ssn", VICTIM)] == ["victim"]
    reports = [r.fieldcrypt for r in caplog.records if r.name == "fieldcrypt.audit"]  # type: ignore[attr-defined]
    assert [(f["event"], f["column"], f["row"]) for f in reports] == [
        ("blind_index.mismatch", "ssn", "'attacker'")
    ]
    assert all(VICTIM not in r.getMessage() and ATTACKER not in r.getMessage() for r in caplog.records)


def test_item_encryptor_verified_drops_a_planted_item(ddb: Any) -> None:
    """boto3 users pass a GSI query's items through ItemEncryptor.verified: the planted item is dropped."""
    encryptor = patients()
    for pid, ssn in (("victim", VICTIM), ("attacker", ATTACKER)):
        ddb.put_item(
            TableName="patients", Item=encryptor.encrypt_item({"patient_id": {"S": pid}, "ssn": {"S": ssn}})
        )
    _plant(ddb)
    (token,) = encryptor.search_tokens("ssn", {"S": VICTIM})
    found = ddb.query(
        TableName="patients",
        IndexName="ssn-index",
        KeyConditionExpression="ssn_bidx = :t",
        ExpressionAttributeValues={":t": {"B": token}},
    )["Items"]
    assert len(found) == 2
    kept = encryptor.verified("ssn", {"S": "111111111"}, found)  # normalised spelling still matches
    assert [(i["patient_id"], i["ssn"]) for i in kept] == [({"S": "victim"}, {"S": VICTIM})]


class KeysOnlyPatient(EncryptedModel):
    Meta = moto_meta("keys_only_patients")

    pid = UnicodeAttribute(hash_key=True)
    tag = EncryptedAttribute(UnicodeAttribute(null=True), keyring="pii")
    tag_bidx = BlindIndexAttribute(of="tag")
    by_tag = blind_index_gsi("tag_bidx", "keys-only-index", KeysOnlyProjection())()


def test_lookup_refuses_a_gsi_that_does_not_project_the_attribute() -> None:
    """A KEYS_ONLY GSI cannot show the value a match must hold, so lookup refuses instead of trusting tokens."""
    with pytest.raises(ConfigurationError, match="does not project 'tag'"):
        list(KeysOnlyPatient.lookup("tag", "x"))
