"""The seed scenario (examples/global_table_mrk.py) against moto: an MRK-encrypted SSN read in a replica region."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "global_table_mrk.py"
PATIENTS = {"p-1": ("Ada", "123-45-6789"), "p-2": ("Grace", "987-65-4321"), "p-3": ("Edsger", "555-12-3456")}


@pytest.fixture
def example() -> ModuleType:
    """The example module, loaded from its file."""
    spec = importlib.util.spec_from_file_location("global_table_mrk", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def written(example: ModuleType, aws_client: Callable[..., Any], moto_endpoint: str) -> Any:
    """Key, tables in both regions, patients written in us-east-1 and replicated; returns the key ARN."""
    clients = lambda service, region: aws_client(service, region)  # noqa: E731
    key_arn = example.create_multi_region_key(clients)
    for region in (example.PRIMARY, example.REPLICA):
        example.create_tables(region, clients, moto_endpoint, key_arn)
    example.write_patients(key_arn, clients, moto_endpoint, PATIENTS)
    assert example.replicate(clients) >= len(PATIENTS) + 2  # patients, one data key, one index key
    yield key_arn
    for region in (example.PRIMARY, example.REPLICA):
        for table in ("patients", example.KEY_TABLE):
            aws_client("dynamodb", region).delete_table(TableName=table)


def test_replica_reader_decrypts_with_local_kms_only(
    example: ModuleType, written: str, aws_client: Callable[..., Any], moto_endpoint: str, request_log: Any
) -> None:
    """The ap-southeast-2 reader decrypts and looks up by SSN; every KMS request it makes goes to ap-southeast-2."""

    def logged(service: str, region: str) -> Any:
        return request_log.attach(aws_client(service, region))

    result = example.read_in_replica(written, logged, moto_endpoint, "987-65-4321")
    assert result == {
        "ssn_by_patient": {pid: ssn for pid, (_, ssn) in PATIENTS.items()},
        "found_by_ssn": ["p-2"],
    }
    kms_calls = [(op, region, arns) for op, region, arns in request_log.calls if op in ("Decrypt", "Encrypt")]
    # One data key; the anchor (a search uses only index keys authenticated under it); one index key.
    assert [op for op, _, _ in kms_calls] == ["Decrypt", "Decrypt", "Decrypt"]
    assert request_log.calls
    assert all(region == "ap-southeast-2" for _, region, _ in request_log.calls)
    for _, _, arns in kms_calls:
        assert arns
        assert all(":ap-southeast-2:" in arn for arn in arns)


def test_dba_sees_only_ciphertext_in_both_regions(
    example: ModuleType, written: str, aws_client: Callable[..., Any]
) -> None:
    """With table access alone, the SSN attribute is binary ciphertext in each region, never the SSN."""
    clients = lambda service, region: aws_client(service, region)  # noqa: E731
    for region in (example.PRIMARY, example.REPLICA):
        item = example.dba_view(clients, region, "p-1")
        assert set(item["ssn"]) == {"B"}
        assert b"123-45-6789" not in item["ssn"]["B"]
        assert b"123456789" not in item["ssn_bidx"]["B"]
        assert item["ssn"]["B"][0] == 1  # format v1


def test_replica_without_the_replica_key_fails_clearly(
    example: ModuleType, written: str, aws_client: Callable[..., Any], moto_endpoint: str
) -> None:
    """A region the MRK was never replicated to cannot decrypt: KeyAccessError names the key, nothing leaks."""
    import fieldcrypt

    clients = lambda service, region: aws_client(service, region)  # noqa: E731
    arn = written.replace(":us-east-1:", ":eu-west-1:")
    master_key = fieldcrypt.KmsMasterKey(written, region="eu-west-1", client=aws_client("kms", "eu-west-1"))
    keyring = fieldcrypt.Keyring(
        "pii",
        master_key,
        fieldcrypt.DynamoDBKeyStore(example.KEY_TABLE, client=aws_client("dynamodb", "us-east-1")),
    )
    Patient = example.patient_model(keyring, "us-east-1", moto_endpoint)
    with pytest.raises(fieldcrypt.KeyAccessError, match=arn):
        Patient.get("p-1")
    del clients


def test_example_runs_as_its_header_says() -> None:
    """`python examples/global_table_mrk.py --moto` runs alone: the replica reads Ada's SSN, the DBA sees bytes."""
    import ast
    import os
    import subprocess
    import sys

    # No AWS settings from this suite: the example's moto needs none and must not depend on them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--moto"], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    dba, app = done.stdout.splitlines()
    prefix = "DBA in ap-southeast-2 sees: "
    assert dba.startswith(prefix)
    seen = ast.literal_eval(dba[len(prefix) :])
    assert set(seen) == {"B"}
    assert seen["B"][0] == 1  # format v1
    assert b"123-45-6789" not in seen["B"]
    assert app == (
        "application in ap-southeast-2 reads: "
        "{'ssn_by_patient': {'p-1': '123-45-6789'}, 'found_by_ssn': ['p-1']}"
    )
