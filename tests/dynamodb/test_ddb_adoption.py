"""Adoption of plaintext DynamoDB attributes: encrypted in place with conditional writes, in
parallel segments, resumable; the transitional read modes of the model and the item encryptor."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ddb_models import Patient
from pynamodb.attributes import BinaryAttribute, UnicodeAttribute, UTCDateTimeAttribute

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.dynamodb.adopt import Adopter
from fieldcrypt.errors import ConfigurationError, DecryptionError, QueryNotSupportedError
from fieldcrypt.pynamodb import EncryptedAttribute, EncryptedModel

pytestmark = pytest.mark.usefixtures("tables")
N = 30


class Stop(Exception):
    """Stands in for a crash or an operator's Ctrl-C."""


def ssn(i: int) -> str:
    return f"000-00-{i:04d}"


def ssn_field(keyring: fieldcrypt.Keyring, **extra: Any) -> EncryptedField:
    """Patient.ssn as an EncryptedField: searchable through ssn_bidx with the model's normalizer."""
    return EncryptedField(
        "S", keyring=keyring, index_attribute="ssn_bidx", normalizer=Patient.ssn_bidx.normalizer, **extra
    )


@pytest.fixture
def plaintext(ddb: Any) -> None:
    """N patients whose ssn an application wrote in clear, before fieldcrypt (and a name, never encrypted)."""
    for i in range(N):
        ddb.put_item(
            TableName="patients",
            Item={"patient_id": {"S": f"p-{i:02d}"}, "ssn": {"S": ssn(i)}, "name": {"S": f"n{i}"}},
        )


def raw_items(ddb: Any) -> dict[str, dict[str, Any]]:
    """Every stored item by patient id, as DynamoDB holds it (a consistent raw scan)."""
    items = ddb.scan(TableName="patients", ConsistentRead=True)["Items"]
    return {item["patient_id"]["S"]: item for item in items}


def assert_all_encrypted(ddb: Any, keyring: fieldcrypt.Keyring, expected: dict[str, str]) -> None:
    """Each stored ssn is a v1 ciphertext bound to its item that decrypts to the expected value."""
    stored = raw_items(ddb)
    assert set(stored) == set(expected)
    for patient_id, item in stored.items():
        blob = bytes(item["ssn"]["B"])
        assert fmt.looks_like_ciphertext(blob)
        place = fieldcrypt.Place("patients", "ssn", patient_id)
        assert keyring.decrypt(blob, place) == expected[patient_id].encode()


def every_ssn() -> dict[str, str]:
    return {f"p-{i:02d}": ssn(i) for i in range(N)}


def test_adopts_every_plaintext_value_in_parallel_segments(
    plaintext: None, ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """Three segments on two threads encrypt every value once: raw items hold ciphertext, the model reads them."""
    seen: list[int] = []
    job = Adopter(
        ddb, "patients", "ssn", field=ssn_field(keyring), total_segments=3, batch_size=7, progress=seen.append
    )
    counts = job.run(workers=2)
    assert counts["scanned"] == N
    assert counts["encrypted"] == N
    assert counts["failed"] == 0
    assert job.failures == []
    assert seen == sorted(seen)
    assert seen[-1] == N
    assert_all_encrypted(ddb, keyring, every_ssn())
    assert (
        {p.patient_id: (p.ssn, p.name) for p in Patient.scan()}
        == {  # other attributes untouched
            patient_id: (value, f"n{int(patient_id[2:])}") for patient_id, value in every_ssn().items()
        }
    )
    assert [p.patient_id for p in Patient.lookup("ssn", "000000007")] == ["p-07"]  # the tokens were written
    again = Adopter(ddb, "patients", "ssn", field=ssn_field(keyring)).run()
    assert (again["encrypted"], again["already_encrypted"]) == (0, N)


def test_numbers_and_maps_are_adopted_as_the_model_reads_them(ddb: Any, keyring: fieldcrypt.Keyring) -> None:
    """N and M plaintexts (the condition compares a map) encrypt to what the model's Number and Map attributes read."""
    ddb.put_item(
        TableName="patients",
        Item={
            "patient_id": {"S": "p-1"},
            "weight": {"N": "71.5"},
            "extra": {"M": {"allergy": {"S": "pollen"}, "level": {"N": "3"}}},
        },
    )
    assert (
        Adopter(ddb, "patients", "weight", field=EncryptedField("N", keyring=keyring)).run()["encrypted"] == 1
    )
    assert (
        Adopter(ddb, "patients", "extra", field=EncryptedField("M", keyring=keyring)).run()["encrypted"] == 1
    )
    item = raw_items(ddb)["p-1"]
    assert fmt.looks_like_ciphertext(bytes(item["weight"]["B"]))
    assert fmt.looks_like_ciphertext(bytes(item["extra"]["B"]))
    patient = Patient.get("p-1")
    assert patient.weight == 71.5
    assert patient.extra == {"allergy": "pollen", "level": Decimal("3")}


def test_an_application_write_during_adoption_is_never_lost(
    plaintext: None, ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """Writes between the job's read and its write win: a model write stays, a plaintext write is adopted from its new value."""
    raced: list[str] = []

    def application_writes_first(params: dict[str, Any], **_: Any) -> None:
        if len(raced) == 2:
            return
        patient_id = params["Key"]["patient_id"]["S"]
        raced.append(patient_id)
        if len(raced) == 1:  # an upgraded process writes through the model (encrypted)
            Patient(patient_id, ssn="999-99-9999").save()
        else:  # a process not yet upgraded writes a new plaintext
            ddb.put_item(
                TableName="patients", Item={"patient_id": {"S": patient_id}, "ssn": {"S": "888-88-8888"}}
            )

    ddb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", application_writes_first)
    try:
        counts = Adopter(ddb, "patients", "ssn", field=ssn_field(keyring)).run()
    finally:
        ddb.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", application_writes_first)
    assert counts["conflicts"] == 2
    assert counts["conflicts_unresolved"] == 0
    assert counts["already_encrypted"] == 1  # the model's value, kept as written
    assert counts["encrypted"] == N - 1
    expected = every_ssn() | {raced[0]: "999-99-9999", raced[1]: "888-88-8888"}
    assert_all_encrypted(ddb, keyring, expected)
    assert [p.patient_id for p in Patient.lookup("ssn", "888888888")] == [raced[1]]


def test_interrupted_adoption_resumes_and_encrypts_each_value_once(
    plaintext: None, ddb: Any, keyring: fieldcrypt.Keyring, tmp_path: Path
) -> None:
    """Stopped after each segment's first page, the rerun resumes from its checkpoints and encrypts only the rest."""

    def stop(scanned: int) -> None:
        raise Stop

    def job(**extra: Any) -> Adopter:
        return Adopter(
            ddb,
            "patients",
            "ssn",
            field=ssn_field(keyring),
            total_segments=2,
            batch_size=4,
            checkpoint_dir=str(tmp_path),
            **extra,
        )

    with pytest.raises(Stop):
        job(progress=stop).run(workers=2)
    done = sum("B" in item["ssn"] for item in raw_items(ddb).values())
    assert 0 < done < N
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dynamodb-encrypt-patients.ssn.0-of-2.json", "dynamodb-encrypt-patients.ssn.1-of-2.json"]
    second = job().run(workers=2)
    assert second["segments_resumed"] >= 1
    assert second["encrypted"] == N - done
    saved = [json.loads((tmp_path / name).read_text()) for name in files]
    assert (
        sum(s["counts"]["encrypted"] for s in saved) == N
    )  # each value encrypted exactly once over both runs
    assert_all_encrypted(ddb, keyring, every_ssn())


def test_values_of_another_type_or_damaged_are_listed_and_left_alone(
    ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """A number where a string belongs and a truncated ciphertext are failures listed by key, never by value."""
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "p-num"}, "ssn": {"N": "123456789"}})
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "p-ok"}, "ssn": {"S": "123-45-6789"}})
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "p-none"}, "name": {"S": "x"}})
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "p-cut"}, "scan_image": {"B": b"\x01abc"}})
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "p-img"}, "scan_image": {"B": b"\x89PNG"}})
    job = Adopter(ddb, "patients", "ssn", field=EncryptedField("S", keyring=keyring))
    counts = job.run()
    assert (counts["encrypted"], counts["failed"], counts["absent"]) == (1, 1, 3)
    assert job.failures == [
        (
            "'p-num'",
            "patients.ssn holds a N value where the field declares S; left as it is (fix the item, or the field's kind)",
        )
    ]
    assert raw_items(ddb)["p-num"]["ssn"] == {"N": "123456789"}
    images = Adopter(ddb, "patients", "scan_image", field=EncryptedField("B", keyring=keyring))
    counts = images.run()
    assert (counts["encrypted"], counts["failed"]) == (1, 1)
    assert [row for row, _ in images.failures] == ["'p-cut'"]
    assert "abc" not in images.failures[0][1]
    assert bytes(raw_items(ddb)["p-cut"]["scan_image"]["B"]) == b"\x01abc"
    assert Patient.get("p-img").scan_image == b"\x89PNG"


def test_dry_run_counts_and_writes_nothing(
    plaintext: None, ddb: Any, keyring: fieldcrypt.Keyring, tmp_path: Path, request_log: Any
) -> None:
    """A dry run counts the plaintext values but sends no write, creates no data key and leaves no checkpoint."""
    request_log.attach(ddb)
    job = Adopter(
        ddb, "patients", "ssn", field=ssn_field(keyring), dry_run=True, checkpoint_dir=str(tmp_path)
    )
    assert job.run()["encrypted"] == N
    assert set(request_log.operations()) == {"DescribeTable", "Scan"}
    assert keyring.chosen_key_id() is None
    assert list(tmp_path.iterdir()) == []
    assert all("S" in item["ssn"] for item in raw_items(ddb).values())


# -- transitional read modes ----------------------------------------------------------------


class AdoptedPatient(EncryptedModel):
    """Patient while its ssn is adopted: reads plaintext and ciphertext alike."""

    class Meta:
        table_name = "patients"
        region = "us-east-1"

    patient_id = UnicodeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(null=True), keyring="pii", transitional=True)
    scan_image = EncryptedAttribute(
        BinaryAttribute(null=True, legacy_encoding=False), keyring="pii", transitional=True
    )


def test_transitional_model_reads_plaintext_and_ciphertext_alike(
    moto_endpoint: str, ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """Mid-adoption a transitional attribute reads both kinds and writes ciphertext; the plain model refuses plaintext."""
    AdoptedPatient.Meta.host = moto_endpoint
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "old"}, "ssn": {"S": "111-11-1111"}})
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "img"}, "scan_image": {"B": b"\x89PNG"}})
    AdoptedPatient("new", ssn="222-22-2222", scan_image=b"\x00\x01").save()
    assert fmt.looks_like_ciphertext(bytes(raw_items(ddb)["new"]["ssn"]["B"]))  # writes are encrypted
    read = {p.patient_id: (p.ssn, p.scan_image) for p in AdoptedPatient.scan()}
    assert read == {
        "old": ("111-11-1111", None),
        "new": ("222-22-2222", b"\x00\x01"),
        "img": (None, b"\x89PNG"),
    }
    with pytest.raises(DecryptionError):
        Patient.get("old")
    with pytest.raises(QueryNotSupportedError, match="being adopted"):
        list(AdoptedPatient.ssn.blind_candidates("111-11-1111", "patients", lambda v: v))
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "cut"}, "scan_image": {"B": b"\x01abc"}})
    with pytest.raises(DecryptionError):
        AdoptedPatient.get("cut")  # a truncated ciphertext is refused, never passed through
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "num"}, "ssn": {"N": "5"}})
    with pytest.raises(DecryptionError):
        AdoptedPatient.get("num")  # a plaintext of another type than the attribute's


def test_transitional_is_only_for_attributes_adoption_writes() -> None:
    """transitional=True on an attribute whose bytes adoption does not write is refused at declaration."""
    with pytest.raises(ConfigurationError, match="transitional=True reads plaintext"):
        EncryptedAttribute(UTCDateTimeAttribute(), keyring="pii", transitional=True)


def test_transitional_item_encryptor_reads_both_and_refuses_searches(
    ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """A transitional EncryptedField returns plaintext as stored, decrypts ciphertext, refuses searches and bad values."""
    encryptor = ItemEncryptor.for_table(ddb, "patients", {"ssn": ssn_field(keyring, transitional=True)})
    encrypted = encryptor.encrypt_item({"patient_id": {"S": "a"}, "ssn": {"S": "111-11-1111"}})
    assert fmt.looks_like_ciphertext(bytes(encrypted["ssn"]["B"]))
    plain = {"patient_id": {"S": "b"}, "ssn": {"S": "222-22-2222"}}
    assert encryptor.decrypt_item(encrypted)["ssn"] == {"S": "111-11-1111"}
    assert encryptor.decrypt_item(plain) == plain
    with pytest.raises(QueryNotSupportedError, match="being adopted"):
        encryptor.search_tokens("ssn", {"S": "111-11-1111"})
    with pytest.raises(QueryNotSupportedError, match="being adopted"):
        encryptor.verified("ssn", {"S": "111-11-1111"}, [plain])
    with pytest.raises(DecryptionError):
        encryptor.decrypt_item({"patient_id": {"S": "c"}, "ssn": {"N": "5"}})
    strict = ItemEncryptor.for_table(ddb, "patients", {"ssn": ssn_field(keyring)})
    with pytest.raises(DecryptionError):
        strict.decrypt_item(plain)


def test_rate_limit_applies_to_the_adoptions_kms_requests(
    plaintext: None, ddb: Any, aws_client: Any, kms_key: str, request_log: Any
) -> None:
    """With a KMS master key, every KMS request of the adoption (new data key, blind-index key) passes the limiter."""
    kms = request_log.attach(aws_client("kms", "us-east-1"))
    keyring = fieldcrypt.Keyring(
        "pii", fieldcrypt.KmsMasterKey(kms_key, client=kms), fieldcrypt.MemoryKeyStore()
    )
    job = Adopter(ddb, "patients", "ssn", field=ssn_field(keyring), max_kms_calls_per_second=1000.0)
    assert job.run()["encrypted"] == N
    kms_requests = [op for op in request_log.operations() if op in ("Decrypt", "Encrypt", "GenerateDataKey")]
    assert kms_requests
    assert job.limiter is not None
    assert job.limiter.acquired == len(kms_requests)
