"""Models shared by the DynamoDB tests; the ``ddb_tables`` fixture points them at moto."""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from ddb_shapes import blind_index_gsi, moto_meta
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel


class Address(MapAttribute[str, object]):
    street = UnicodeAttribute()
    zip_code = UnicodeAttribute(null=True)
    photo = BinaryAttribute(null=True, legacy_encoding=False)
    tags = ListAttribute(of=UnicodeAttribute, null=True)


SsnIndex = blind_index_gsi("ssn_bidx", "ssn-index")


class Patient(EncryptedModel):
    Meta = moto_meta("patients")

    patient_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(null=True)
    ssn = EncryptedAttribute(UnicodeAttribute(null=True), keyring="pii")
    ssn_bidx = BlindIndexAttribute(of="ssn", normalizer=lambda s: s.replace("-", ""))
    by_ssn = SsnIndex()
    weight = EncryptedAttribute(NumberAttribute(null=True), keyring="pii")
    scan_image = EncryptedAttribute(BinaryAttribute(null=True, legacy_encoding=False), keyring="pii")
    consent = EncryptedAttribute(BooleanAttribute(null=True), keyring="pii")
    born = EncryptedAttribute(UTCDateTimeAttribute(null=True), keyring="pii")
    notes = EncryptedAttribute(JSONAttribute(null=True), keyring="pii")
    address = EncryptedAttribute(Address(null=True), keyring="pii")
    extra = EncryptedAttribute(MapAttribute(null=True), keyring="pii")
    visits = EncryptedAttribute(ListAttribute(null=True), keyring="pii")
    codes = EncryptedAttribute(ListAttribute(of=NumberAttribute, null=True), keyring="pii")
    version = VersionAttribute(null=True)


class Visit(EncryptedModel):
    """A table with a numeric hash key and a range key (composite item key)."""

    Meta = moto_meta("visits")

    clinic = NumberAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    diagnosis = EncryptedAttribute(UnicodeAttribute(), keyring="pii")


MODELS: list[type[EncryptedModel]] = [Patient, Visit]
