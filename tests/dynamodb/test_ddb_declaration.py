"""How encrypted PynamoDB attributes are declared: typed like what they wrap; no blind index on a boolean by accident."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pynamodb.attributes import BooleanAttribute, UnicodeAttribute

import fieldcrypt
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel

ROOT = Path(__file__).resolve().parents[2]

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


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "typed_ddb_models.py"
    path.write_text(source)
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(path)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def test_encrypted_attributes_are_typed_like_their_inner_attribute(tmp_path: Path) -> None:
    """Under mypy --strict, EncryptedAttribute(UnicodeAttribute()) reads and accepts str."""
    result = _mypy(tmp_path, MODEL)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_refuses_a_wrongly_typed_value(tmp_path: Path) -> None:
    """Assigning an int to an encrypted UnicodeAttribute is a mypy error (it was accepted as Any)."""
    result = _mypy(tmp_path, MODEL + "\n\ndef wrong(patient: Patient) -> None:\n    patient.ssn = 123\n")
    assert result.returncode == 1
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str | None")' in (
        result.stdout
    )
    assert "typed_ddb_models.py:23: error" in result.stdout


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
