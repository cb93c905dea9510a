"""How encrypted PynamoDB attributes are declared: typed like what they wrap; no blind index on a boolean by accident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pynamodb.attributes import BooleanAttribute, UnicodeAttribute

import fieldcrypt
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel
from typecheck import assert_accepted, assert_rejected

MODEL = """
from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from fieldcrypt.pynamodb import EncryptedAttribute, EncryptedModel


class Patient(EncryptedModel):
    class Meta:
        table_name = "patients"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="pii")
    weight = EncryptedAttribute(NumberAttribute(null=True), keyring="pii")


def read(patient: Patient) -> str:
    patient.ssn = "123-45-6789"
    patient.weight = 72.5
    return patient.ssn
"""


def test_encrypted_attributes_are_typed_like_their_inner_attribute(tmp_path: Path) -> None:
    """Under mypy --strict, EncryptedAttribute(UnicodeAttribute()) reads and accepts str."""
    assert_accepted(tmp_path / "typed_ddb_models.py", MODEL)


def test_mypy_refuses_a_wrongly_typed_value(tmp_path: Path) -> None:
    """Assigning an int to an encrypted UnicodeAttribute is a mypy error (it was accepted as Any)."""
    assert_rejected(
        tmp_path / "typed_ddb_models.py",
        MODEL + "\n\ndef wrong(patient: Patient) -> None:\n    patient.ssn = 123\n",
        line=23,
        message='Incompatible types in assignment (expression has type "int", variable has type "str | None")',
    )


def _flags_model(**blind: Any) -> type[EncryptedModel]:
    class Account(EncryptedModel):
        class Meta:
            table_name = "accounts"

        account_id = UnicodeAttribute(hash_key=True)
        vip = EncryptedAttribute(BooleanAttribute(null=True), keyring="pii")
        vip_bidx = BlindIndexAttribute(of="vip", **blind)

    return Account


def test_blind_index_of_a_boolean_is_refused() -> None:
    """A blind index over a BooleanAttribute is refused when the model is defined, saying why and how to opt in."""
    with pytest.raises(
        fieldcrypt.ConfigurationError,
        match=r"^Account.vip \(a BooleanAttribute, indexed by vip_bidx\) can hold only 2 values, so a blind "
        r"index on it reveals every row's value to anyone who knows one row's .*"
        r"pass allow_low_cardinality_index=True to accept that leak$",
    ):
        _flags_model()


def test_blind_index_of_a_boolean_with_consent() -> None:
    """With allow_low_cardinality_index=True the model is accepted; other blind indexes need no flag."""
    assert _flags_model(allow_low_cardinality_index=True)._fieldcrypt_blind
