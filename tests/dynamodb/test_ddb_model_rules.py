"""What EncryptedModel refuses, at class definition and in expressions: clear errors, never silent misses."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ddb_models import Patient
from pynamodb.attributes import MapAttribute, NumberSetAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

import fieldcrypt
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel

REFUSED = "attribute 'ssn' is encrypted: conditions, filters and arithmetic on it cannot work on ciphertext"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Patient.ssn == "123-45-6789",
        lambda: Patient.ssn != "x",
        lambda: Patient.ssn < "x",
        lambda: Patient.ssn >= "x",
        lambda: Patient.ssn.between("a", "b"),
        lambda: Patient.ssn.is_in("a", "b"),
        lambda: Patient.ssn.startswith("123"),
        lambda: Patient.ssn.contains("45"),
        lambda: Patient.ssn["x"],
        lambda: Patient.ssn + 1,
        lambda: Patient.ssn.append(["x"]),
        lambda: Patient.ssn.add("x"),
    ],
)
def test_conditions_on_encrypted_attributes_raise(build: Any) -> None:
    """Comparisons, filters and arithmetic on an encrypted attribute raise QueryNotSupportedError."""
    with pytest.raises(fieldcrypt.QueryNotSupportedError, match=f"^{re.escape(REFUSED)}"):
        build()


def test_existence_conditions_are_allowed() -> None:
    """exists()/does_not_exist() need no plaintext, so they still build a condition."""
    assert str(Patient.ssn.exists()) == "attribute_exists (ssn)"
    assert str(Patient.ssn.does_not_exist()) == "attribute_not_exists (ssn)"


def test_blind_index_queried_with_a_value_is_refused() -> None:
    """Querying the GSI with a plaintext instead of a token says to use lookup()."""
    with pytest.raises(fieldcrypt.QueryNotSupportedError, match=r"use Model.lookup\(attribute, value\)"):
        Patient.by_ssn.query("123-45-6789")


@pytest.mark.parametrize(
    "inner",
    [UnicodeAttribute(hash_key=True), UnicodeAttribute(range_key=True), MapAttribute(hash_key=True)],
    ids=["hash", "range", "map-hash"],
)
def test_encrypted_key_is_refused(inner: Any) -> None:
    """An encrypted hash or range key is refused when the attribute is declared."""
    with pytest.raises(
        fieldcrypt.ConfigurationError, match=r"^an encrypted attribute cannot be a hash or range key"
    ):
        EncryptedAttribute(inner, keyring="pii")


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        (
            NumberSetAttribute(),
            "cannot encrypt a NumberSetAttribute: EncryptedAttribute wraps UnicodeAttribute",
        ),
        (VersionAttribute(), "VersionAttribute cannot be encrypted: DynamoDB must read it in clear"),
    ],
)
def test_unsupported_inner_types_are_refused(inner: Any, message: str) -> None:
    """Attribute types that cannot be encrypted faithfully are refused by name."""
    with pytest.raises(fieldcrypt.ConfigurationError, match=f"^{re.escape(message)}"):
        EncryptedAttribute(inner, keyring="pii")


def test_index_keyed_on_an_encrypted_attribute_is_refused() -> None:
    """A GSI whose key is an encrypted attribute is refused at class definition."""

    class ByNote(GlobalSecondaryIndex[Any]):
        class Meta:
            index_name = "note-index"
            projection = AllProjection()

        note = UnicodeAttribute(hash_key=True)

    with pytest.raises(fieldcrypt.ConfigurationError, match="cannot be keyed on encrypted attribute 'note'"):

        class Bad(EncryptedModel):
            class Meta:
                table_name = "bad"

            pk = UnicodeAttribute(hash_key=True)
            note = EncryptedAttribute(UnicodeAttribute(), keyring="pii")
            by_note = ByNote()


def test_blind_index_of_unknown_attribute_is_refused() -> None:
    """A BlindIndexAttribute must name an encrypted attribute of the same model."""
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"BlindIndexAttribute\(of=...\) must name"):

        class Bad(EncryptedModel):
            class Meta:
                table_name = "bad"

            pk = UnicodeAttribute(hash_key=True)
            name = UnicodeAttribute()
            name_bidx = BlindIndexAttribute(of="name")


def test_encrypted_attribute_on_a_plain_model_is_refused(local_keyring: fieldcrypt.Keyring) -> None:
    """On a plain PynamoDB Model the attribute cannot know its item, so serialising it raises."""

    class Plain(Model):
        class Meta:
            table_name = "plain"

        pk = UnicodeAttribute(hash_key=True)
        secret = EncryptedAttribute(UnicodeAttribute(), keyring=local_keyring)

    with pytest.raises(
        fieldcrypt.ConfigurationError, match="can only be read or written through an EncryptedModel"
    ):
        Plain("a", secret="s").serialize()


def test_set_action_outside_model_update_is_refused() -> None:
    """An encrypted set() action serialised by anything but EncryptedModel.update raises instead of writing."""
    action = Patient.ssn.set("123-45-6789")
    assert repr(action) == "ssn = <encrypted>"
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"must go through EncryptedModel\.update"):
        action.serialize({}, {})


def test_keyring_is_resolved_lazily_by_name() -> None:
    """A model names its keyring before it is registered; using it unregistered says how to fix it."""
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"no keyring named 'pii' is registered"):
        Patient("p-1", ssn="123-45-6789").serialize()
