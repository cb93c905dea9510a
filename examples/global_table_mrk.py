"""A DynamoDB global table whose SSN attribute is encrypted client-side under a multi-region key.

The scenario: patients are written in us-east-1; DynamoDB global tables replicate the items, and
the key-store table, to ap-southeast-2; an application there reads them, and decrypts through the
MRK's local replica, with no cross-region call and no re-encryption. A DBA with table access in
either region sees only ciphertext.

Run it against moto in this process, or against AWS (it creates a KMS key, which costs money,
and tables):

    python examples/global_table_mrk.py --moto                  # no AWS account needed
    python examples/global_table_mrk.py                         # AWS, with your credentials
    python examples/global_table_mrk.py --endpoint-url URL      # another AWS-compatible endpoint

--moto starts moto through fieldcrypt.testing.moto_server(), which fixes moto's KMS first: moto
5.2 cuts a multi-region key's id (40 characters) to the 36 bytes its ciphertext blobs reserve, so
a stock moto server cannot decrypt under an MRK (fieldcrypt then reports AccessDenied, "grant
kms:Decrypt"). A moto server started as its own program is not fixed, so pointing --endpoint-url
at one fails that way. The test suite runs this file as a subprocess with --moto
(tests/dynamodb/test_ddb_global_table_example.py).

Here "replication" copies the items of both tables to the second region: a stand-in for global
tables, which moto does not replicate.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

import fieldcrypt
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel
from fieldcrypt.testing import moto_server

PRIMARY, REPLICA = "us-east-1", "ap-southeast-2"
KEY_TABLE = "fieldcrypt_keys"
Clients = Callable[[str, str], Any]  # (service, region) -> boto3 client


def boto_clients(endpoint_url: str | None) -> Clients:
    """Plain boto3 clients with standard retries (optionally against moto or another endpoint)."""

    def make(service: str, region: str) -> Any:
        config = Config(region_name=region, retries={"mode": "standard", "max_attempts": 5})
        return boto3.session.Session().client(service, config=config, endpoint_url=endpoint_url)

    return make


def patient_model(keyring: fieldcrypt.Keyring, region: str, host: str | None) -> type[EncryptedModel]:
    """The patients model as the application in ``region`` declares it."""

    class SsnIndex(GlobalSecondaryIndex[Any]):
        class Meta:
            index_name = "ssn-index"
            projection = AllProjection()

        ssn_bidx = BlindIndexAttribute(hash_key=True)

    class Patient(EncryptedModel):
        class Meta:
            table_name = "patients"
            billing_mode = "PAY_PER_REQUEST"

        patient_id = UnicodeAttribute(hash_key=True)
        name = UnicodeAttribute()
        ssn = EncryptedAttribute(UnicodeAttribute(), keyring=keyring)
        ssn_bidx = BlindIndexAttribute(of="ssn")
        by_ssn = SsnIndex()

    Patient.Meta.region = region
    Patient.Meta.host = host
    return Patient


def create_multi_region_key(clients: Clients) -> str:
    """An MRK in us-east-1 with a replica in ap-southeast-2; returns the primary's ARN."""
    primary = clients("kms", PRIMARY).create_key(MultiRegion=True, Description="patients SSN")["KeyMetadata"]
    # ReplicateKey takes the bare key id (moto answers an ARN with HTTP 500; AWS takes both).
    clients("kms", PRIMARY).replicate_key(KeyId=primary["KeyId"], ReplicaRegion=REPLICA)
    return str(primary["Arn"])


def keyring_in(region: str, key_arn: str, clients: Clients) -> fieldcrypt.Keyring:
    """The "pii" keyring of the application in ``region``: the MRK used through its local replica."""
    master_key = fieldcrypt.KmsMasterKey(key_arn, region=region, client=clients("kms", region))
    key_store = fieldcrypt.DynamoDBKeyStore(KEY_TABLE, client=clients("dynamodb", region))
    return fieldcrypt.Keyring("pii", master_key, key_store)


def create_tables(region: str, clients: Clients, host: str | None, key_arn: str) -> None:
    keyring = keyring_in(region, key_arn, clients)
    keyring.key_store.create_table()  # type: ignore[attr-defined]
    patient_model(keyring, region, host).create_table(wait=True)


def write_patients(
    key_arn: str, clients: Clients, host: str | None, patients: dict[str, tuple[str, str]]
) -> None:
    """The us-east-1 application saves patients: {id: (name, ssn)}."""
    Patient = patient_model(keyring_in(PRIMARY, key_arn, clients), PRIMARY, host)
    with Patient.batch_write() as batch:
        for patient_id, (name, ssn) in patients.items():
            batch.save(Patient(patient_id, name=name, ssn=ssn))


def replicate(clients: Clients) -> int:
    """Copy every item of both tables to the replica region (what global tables do); returns items."""
    copied = 0
    source, target = clients("dynamodb", PRIMARY), clients("dynamodb", REPLICA)
    for table in (KEY_TABLE, "patients"):
        for page in source.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                target.put_item(TableName=table, Item=item)
                copied += 1
    return copied


def read_in_replica(key_arn: str, clients: Clients, host: str | None, ssn: str) -> dict[str, Any]:
    """The ap-southeast-2 application reads every patient and looks one up by SSN."""
    Patient = patient_model(keyring_in(REPLICA, key_arn, clients), REPLICA, host)
    patients = {p.patient_id: p.ssn for p in Patient.scan()}
    found = [p.patient_id for p in Patient.lookup("ssn", ssn)]
    return {"ssn_by_patient": patients, "found_by_ssn": found}


def dba_view(clients: Clients, region: str, patient_id: str) -> dict[str, Any]:
    """What someone with only table access sees: the raw item."""
    item = clients("dynamodb", region).get_item(TableName="patients", Key={"patient_id": {"S": patient_id}})
    return dict(item["Item"])


def run(endpoint_url: str | None) -> None:
    clients = boto_clients(endpoint_url)
    key_arn = create_multi_region_key(clients)
    for region in (PRIMARY, REPLICA):
        create_tables(region, clients, endpoint_url, key_arn)
    write_patients(key_arn, clients, endpoint_url, {"p-1": ("Ada", "123-45-6789")})
    replicate(clients)
    print("DBA in", REPLICA, "sees:", dba_view(clients, REPLICA, "p-1")["ssn"])
    print("application in", REPLICA, "reads:", read_in_replica(key_arn, clients, endpoint_url, "123-45-6789"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--moto", action="store_true", help="run against moto in this process (no AWS)")
    where.add_argument("--endpoint-url", help="an AWS-compatible endpoint instead of AWS")
    args = parser.parse_args(argv)
    if args.moto:
        with moto_server() as endpoint_url:
            run(endpoint_url)
    else:
        run(args.endpoint_url)


if __name__ == "__main__":
    main()
