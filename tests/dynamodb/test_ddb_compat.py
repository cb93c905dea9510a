"""Each PynamoDB internal fieldcrypt reads works on the installed version, or fails loudly."""

from __future__ import annotations

from importlib import metadata

import pytest
from ddb_models import Address, Patient, SsnIndex, Visit
from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from fieldcrypt import ConfigurationError
from fieldcrypt.pynamodb import _compat

pytestmark = pytest.mark.compat


def test_key_names_of_hash_only_and_composite_models() -> None:
    """Hash-only and hash+range models report their key attributes' Python names."""
    assert _compat.key_names(Patient) == ("patient_id", None)
    assert _compat.key_names(Visit) == ("clinic", "day")


def test_indexes_and_their_hash_keys() -> None:
    """A model's GSIs are found by index name, each with the attribute it is keyed on."""
    found = _compat.indexes(Patient)
    assert list(found) == ["ssn-index"]
    assert isinstance(found["ssn-index"], SsnIndex)
    assert _compat.index_hash_key(found["ssn-index"]).attr_name == "ssn_bidx"
    assert _compat.indexes(Visit) == {}


def test_map_attribute_container_state() -> None:
    """A MapAttribute still holding its arguments aside is a container; one bound to a model is not."""

    class Holder(Model):
        class Meta:
            table_name = "holder"

        key = UnicodeAttribute(hash_key=True)
        home = Address(null=True)

    assert _compat.is_attribute_container(Address(null=True)) is True
    assert _compat.is_attribute_container(Patient.get_attributes()["address"].inner) is True
    assert _compat.is_attribute_container(Holder.get_attributes()["home"]) is False


def test_a_missing_internal_names_the_installed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Model._range_keyname (a future PynamoDB), the read raises naming PynamoDB's version."""

    class Plain(Model):
        class Meta:
            table_name = "plain"

        key = UnicodeAttribute(hash_key=True)

    monkeypatch.delattr(Model, "_range_keyname")
    with pytest.raises(ConfigurationError) as caught:
        _compat.key_names(Plain)
    version = metadata.version("pynamodb")
    assert str(caught.value).startswith(
        f"pynamodb {version} has no Plain._range_keyname, which fieldcrypt reads"
    )
