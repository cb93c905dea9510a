"""DynamoDB status names the keyring's authenticated current key, never a newer planted one
(it used to pick the newest active row by created_at)."""

from __future__ import annotations

from typing import Any

import pytest
from ddb_models import Patient

import fieldcrypt
from fieldcrypt.dynamodb.status import table_status
from test_planted_keys import plant_record

pytestmark = pytest.mark.usefixtures("tables")


def test_status_names_the_authenticated_current_key(keyring: fieldcrypt.Keyring, ddb: Any) -> None:
    """A planted active key, dated newest with a higher generation, is not named current by status."""
    Patient("p-1", ssn="123-45-6789").save()
    current = keyring.current_key_id()
    assert plant_record(keyring) != current
    status = table_status(ddb, "patients", "ssn", keyring=keyring)
    assert (status.current_key, status.not_current) == (current, 0)
    stored = ddb.get_item(TableName="patients", Key={"patient_id": {"S": "p-1"}})["Item"]["ssn"]["B"]
    assert b"123-45-6789" not in bytes(stored)
