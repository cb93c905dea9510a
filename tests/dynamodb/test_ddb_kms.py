"""PynamoDB models under a KMS master key: KMS calls stay a handful, KMS failures surface as KeyAccessError."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from ddb_models import Patient

import fieldcrypt

pytestmark = pytest.mark.usefixtures("tables")


@pytest.fixture
def kms_keyring(kms_key: str, aws_client: Any, request_log: Any) -> fieldcrypt.Keyring:
    """A "pii" keyring under a moto KMS key, its KMS client logged, replacing the local one."""
    master = fieldcrypt.KmsMasterKey(kms_key, client=request_log.attach(aws_client("kms", "us-east-1")))
    return fieldcrypt.register(fieldcrypt.Keyring("pii", master, fieldcrypt.MemoryKeyStore()), replace=True)


def test_many_items_cost_a_handful_of_kms_calls(kms_keyring: fieldcrypt.Keyring, request_log: Any) -> None:
    """Writing 200 items costs three KMS calls (anchor, data key, index key); reading them in a new process one."""
    with Patient.batch_write() as batch:
        for i in range(200):
            batch.save(Patient(f"p-{i}", ssn=f"000-00-{i:04d}"))
    assert request_log.operations() == ["Encrypt", "Encrypt", "Encrypt"]
    request_log.calls.clear()
    reader = fieldcrypt.Keyring("pii", kms_keyring.master_key, kms_keyring.key_store)
    fieldcrypt.register(reader, replace=True)
    assert len({p.ssn for p in Patient.scan()}) == 200
    assert request_log.operations() == ["Decrypt"]


def test_kms_denial_is_a_key_access_error(kms_keyring: fieldcrypt.Keyring, request_log: Any) -> None:
    """When KMS refuses, reads raise KeyAccessError naming the key, not a decryption error or garbage."""
    Patient("p-1", ssn="123-45-6789").save()
    reader = fieldcrypt.Keyring("pii", kms_keyring.master_key, kms_keyring.key_store)
    fieldcrypt.register(reader, replace=True)

    def deny(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "Decrypt")

    client = kms_keyring.master_key.client  # type: ignore[attr-defined]
    client.meta.events.register("before-call.kms.Decrypt", deny)
    try:
        with pytest.raises(fieldcrypt.KeyAccessError, match="grant kms:Decrypt on the key") as caught:
            Patient.get("p-1")
        assert not isinstance(caught.value, fieldcrypt.DecryptionError)
    finally:
        client.meta.events.unregister("before-call.kms.Decrypt", deny)
    assert Patient.get("p-1").ssn == "123-45-6789"


def test_mrk_value_written_in_one_region_reads_in_another(
    mrk: dict[str, str], aws_client: Any, request_log: Any, moto_endpoint: str
) -> None:
    """Written under the MRK in us-east-1, read through the us-west-2 replica: every KMS ARN of the reader names us-west-2."""
    store = fieldcrypt.MemoryKeyStore()  # stands in for a key store replicated with the table
    writer_key = fieldcrypt.KmsMasterKey(mrk["us-east-1"], client=aws_client("kms", "us-east-1"))
    fieldcrypt.register(fieldcrypt.Keyring("pii", writer_key, store), replace=True)
    Patient("p-1", ssn="123-45-6789").save()
    reader_kms = request_log.attach(aws_client("kms", "us-west-2"))
    reader_key = fieldcrypt.KmsMasterKey(mrk["us-east-1"], region="us-west-2", client=reader_kms)
    fieldcrypt.register(fieldcrypt.Keyring("pii", reader_key, store), replace=True)
    assert Patient.get("p-1").ssn == "123-45-6789"
    assert [p.patient_id for p in Patient.lookup("ssn", "123-45-6789")] == ["p-1"]
    assert request_log.operations() == ["Decrypt"] * 3  # the data key, the anchor, the blind-index key
    for _, region, arns in request_log.calls:
        assert region == "us-west-2"
        assert arns == [mrk["us-west-2"]]
