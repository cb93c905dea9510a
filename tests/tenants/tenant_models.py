"""A multi-tenant PynamoDB model and its boto3 item-encryptor twin, for the per-tenant tests."""

from __future__ import annotations

import sqlalchemy as sa
from pynamodb.attributes import UnicodeAttribute

from ddb_shapes import blind_index_gsi, moto_meta
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel


def digits(ssn: str) -> str:
    """The SSN's digits: the blind index matches with or without dashes."""
    return ssn.replace("-", "")


class Member(EncryptedModel):
    """One table shared by every tenant; ``tenant_id`` chooses the keyring of ``ssn`` and ``note``."""

    Meta = moto_meta("members")

    member_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute(null=True)
    ssn = EncryptedAttribute(UnicodeAttribute(null=True), keyring="tenant-pii", tenant="tenant_id")
    ssn_bidx = BlindIndexAttribute(of="ssn", normalizer=digits)
    by_ssn = blind_index_gsi("ssn_bidx", "ssn-index")()
    note = EncryptedAttribute(UnicodeAttribute(null=True), keyring="tenant-pii", tenant="tenant_id")


def members_encryptor() -> ItemEncryptor:
    """What Member declares, for raw boto3 items (same names, normalizer, tenant attribute)."""
    return ItemEncryptor(
        table="members",
        key_attributes=("member_id",),
        attributes={
            "ssn": EncryptedField(
                "S",
                keyring="tenant-pii",
                tenant="tenant_id",
                index_attribute="ssn_bidx",
                normalizer=digits,
            ),
            "note": EncryptedField("S", keyring="tenant-pii", tenant="tenant_id"),
        },
    )


def sql_members(name: str) -> sa.Table:
    """A SQL table of members of every tenant: ``tenant_id`` in clear, ``ssn`` ciphertext bytes."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("ssn", sa.LargeBinary),
    )
