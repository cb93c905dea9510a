"""EncryptedAttribute through PynamoDB against moto: round trips, what DynamoDB stores, binding to the item."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from ddb_models import Address, Patient, Visit

import fieldcrypt
from fieldcrypt.format import OVERHEAD

pytestmark = pytest.mark.usefixtures("tables")

UTC = dt.UTC
FULL: dict[str, Any] = {
    "ssn": "123-45-6789",
    "weight": 72.5,
    "scan_image": b"\x00\x01\xff",
    "consent": True,
    "born": dt.datetime(1990, 5, 17, 8, 30, 1, 250, tzinfo=UTC),
    "notes": {"allergies": ["penicillin"], "score": 3, "flag": None},
    "address": {"street": "1 Main St", "zip_code": "02139", "photo": b"\x89PNG", "tags": ["home", "mail"]},
    "extra": {"nested": {"deep": [1, "two", b"\x03"]}, "n": 7, "s": "x"},
    "visits": ["a", 2, {"m": b"\x04"}, [True, False]],
    "codes": [1, 2.5, -3],
}
EMPTY: dict[str, Any] = {
    "ssn": "",
    "weight": 0,
    "scan_image": b"",
    "consent": False,
    "born": dt.datetime(1, 1, 1, tzinfo=UTC),
    "notes": {},
    "address": {"street": ""},
    "extra": {},
    "visits": [],
    "codes": [],
}
ENCRYPTED = list(FULL)


def comparable(patient: Patient) -> dict[str, Any]:
    """The encrypted attributes of a patient as plain Python values."""
    out = {name: getattr(patient, name) for name in ENCRYPTED}
    if out["address"] is not None:
        out["address"] = {k: v for k, v in out["address"].as_dict().items() if v is not None}
    return out


def expected(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in ENCRYPTED}


def raw_item(ddb: Any, table: str, key: dict[str, Any]) -> dict[str, Any]:
    return dict(ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])


def assert_ciphertext_only(item: dict[str, Any], values: dict[str, Any]) -> None:
    """Every encrypted attribute is B holding a v1 ciphertext, and no plaintext appears in it."""
    for name, value in values.items():
        if value is None:
            assert name not in item
            continue
        assert set(item[name]) == {"B"}, name
        blob = item[name]["B"]
        assert blob[0] == 1
        assert len(blob) >= OVERHEAD
        if isinstance(value, str) and len(value) >= 4:
            assert value.encode() not in blob


READS: dict[str, Callable[[], Patient]] = {
    "get": lambda: Patient.get("p-1"),
    "batch_get": lambda: next(iter(Patient.batch_get(["p-1"]))),
    "query": lambda: next(iter(Patient.query("p-1"))),
    "scan": lambda: next(iter(Patient.scan())),
}


def write(how: str, patient: Patient) -> None:
    if how == "save":
        patient.save()
    else:
        with Patient.batch_write() as batch:
            batch.save(patient)


@pytest.mark.parametrize("read", list(READS))
@pytest.mark.parametrize("how", ["save", "batch_write"])
@pytest.mark.parametrize("values", [FULL, EMPTY], ids=["full", "empty"])
def test_round_trip_every_type(values: dict[str, Any], how: str, read: str, ddb: Any) -> None:
    """Every wrapped type, empty and nested values included, survives each write and read path; DynamoDB holds only binary ciphertext."""
    write(how, Patient("p-1", name="Ada", **values))
    assert comparable(READS[read]()) == expected(values)
    item = raw_item(ddb, "patients", {"patient_id": {"S": "p-1"}})
    assert item["name"] == {"S": "Ada"}
    assert_ciphertext_only(item, values)


def test_values_come_back_as_the_inner_types() -> None:
    """Numbers keep int vs float, datetimes come back aware in UTC, typed maps as their class."""
    naive = dt.datetime(2001, 2, 3, 4, 5, 6)
    Patient("p-1", weight=70, codes=[1, 2.5], born=naive, address=Address(street="x")).save()
    got = Patient.get("p-1")
    assert type(got.weight) is int
    assert got.codes == [1, 2.5]
    assert type(got.codes[0]) is int
    assert got.born == naive.replace(tzinfo=UTC)
    assert got.born.tzinfo is not None
    assert isinstance(got.address, Address)
    assert got.address.street == "x"
    offset = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    Patient("p-2", born=offset).save()
    assert Patient.get("p-2").born == offset
    assert Patient.get("p-2").born.utcoffset() == dt.timedelta(0)


def test_none_stays_absent(ddb: Any) -> None:
    """A None value writes no attribute at all (not an encrypted null) and reads back as None."""
    Patient("p-1", name="Ada").save()
    item = raw_item(ddb, "patients", {"patient_id": {"S": "p-1"}})
    assert set(item) == {"patient_id", "name", "version"}
    assert comparable(Patient.get("p-1")) == expected({})


def test_batch_write_batch_get_query_scan(ddb: Any) -> None:
    """batch_write, batch_get, query and scan all encrypt and decrypt, bound to each item."""
    with Patient.batch_write() as batch:
        for i in range(30):  # more than one BatchWriteItem page of 25
            batch.save(Patient(f"p-{i}", ssn=f"000-00-{i:04d}", codes=[i]))
    keys = [f"p-{i}" for i in range(30)]
    got = {p.patient_id: (p.ssn, p.codes) for p in Patient.batch_get(keys)}
    assert got == {f"p-{i}": (f"000-00-{i:04d}", [i]) for i in range(30)}
    assert [p.ssn for p in Patient.query("p-7")] == ["000-00-0007"]
    assert sorted(p.ssn for p in Patient.scan()) == sorted(f"000-00-{i:04d}" for i in range(30))
    for i in (0, 29):
        item = raw_item(ddb, "patients", {"patient_id": {"S": f"p-{i}"}})
        assert_ciphertext_only(item, {"ssn": f"000-00-{i:04d}"})


def test_composite_numeric_key_round_trip(ddb: Any) -> None:
    """A numeric hash key with a range key binds and round-trips, including through query."""
    Visit(5, "2026-01-02", diagnosis="flu").save()
    Visit(5, "2026-01-03", diagnosis="cold").save()
    assert [v.diagnosis for v in Visit.query(5)] == ["flu", "cold"]
    assert Visit.get(5.0, "2026-01-02").diagnosis == "flu"  # 5 and 5.0 are one DynamoDB key
    item = raw_item(ddb, "visits", {"clinic": {"N": "5"}, "day": {"S": "2026-01-02"}})
    assert set(item["diagnosis"]) == {"B"}


def test_update_set_encrypts_for_the_item(ddb: Any) -> None:
    """update(actions=[Model.attr.set(v)]) stores ciphertext, returns the new plaintext, and removes on None."""
    patient = Patient("p-1", name="Ada", ssn="123-45-6789")
    patient.save()
    patient.update(actions=[Patient.ssn.set("987-65-4321"), Patient.name.set("Ada L.")])
    assert patient.ssn == "987-65-4321"
    assert Patient.get("p-1").ssn == "987-65-4321"
    assert_ciphertext_only(raw_item(ddb, "patients", {"patient_id": {"S": "p-1"}}), {"ssn": "987-65-4321"})
    patient.update(actions=[Patient.ssn.set(None)])
    item = raw_item(ddb, "patients", {"patient_id": {"S": "p-1"}})
    assert "ssn" not in item
    assert "ssn_bidx" not in item
    assert Patient.get("p-1").ssn is None


def test_transaction_save_and_update(ddb: Any) -> None:
    """TransactWrite save/update encrypt bound to the item; TransactGet and refresh decrypt."""
    from pynamodb.connection import Connection
    from pynamodb.transactions import TransactGet, TransactWrite

    connection = Connection(region="us-east-1", host=Patient.Meta.host)
    with TransactWrite(connection=connection) as transaction:
        transaction.save(Patient("p-1", ssn="111-11-1111"))
    patient = Patient.get("p-1")
    with TransactWrite(connection=connection) as transaction:
        transaction.update(patient, actions=[Patient.ssn.set("222-22-2222")])
    assert Patient.get("p-1").ssn == "222-22-2222"
    with TransactGet(connection=connection) as reads:
        future = reads.get(Patient, "p-1")
    assert future.get().ssn == "222-22-2222"
    patient.refresh()
    assert patient.ssn == "222-22-2222"
    assert_ciphertext_only(raw_item(ddb, "patients", {"patient_id": {"S": "p-1"}}), {"ssn": "222-22-2222"})


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (("p-1", "ssn"), ("p-2", "ssn")),  # another item
        (("p-1", "ssn"), ("p-1", "notes")),  # another attribute of the same item
    ],
    ids=["other-item", "other-attribute"],
)
def test_copied_ciphertext_fails_opaquely(source: tuple[str, str], target: tuple[str, str], ddb: Any) -> None:
    """A ciphertext copied to another item or attribute fails with the opaque error naming table, attribute and key."""
    Patient("p-1", ssn="123-45-6789", notes={"a": 1}).save()
    Patient("p-2", ssn="987-65-4321").save()
    stolen = raw_item(ddb, "patients", {"patient_id": {"S": source[0]}})[source[1]]
    ddb.update_item(
        TableName="patients",
        Key={"patient_id": {"S": target[0]}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": target[1]},
        ExpressionAttributeValues={":v": stolen},
    )
    with pytest.raises(fieldcrypt.DecryptionError) as caught:
        Patient.get(target[0])
    assert str(caught.value) == f"cannot decrypt patients.{target[1]} (row '{target[0]}')"
    assert (caught.value.table, caught.value.column, caught.value.row) == (
        "patients",
        target[1],
        f"'{target[0]}'",
    )
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_composite_key_copy_fails_naming_both_key_parts(ddb: Any) -> None:
    """With a range key, a value copied to another range key fails and the error names the whole key."""
    from decimal import Decimal

    Visit(5, "a", diagnosis="flu").save()
    Visit(5, "b", diagnosis="cold").save()
    stolen = raw_item(ddb, "visits", {"clinic": {"N": "5"}, "day": {"S": "a"}})["diagnosis"]
    ddb.put_item(TableName="visits", Item={"clinic": {"N": "5"}, "day": {"S": "b"}, "diagnosis": stolen})
    with pytest.raises(fieldcrypt.DecryptionError) as caught:
        Visit.get(5, "b")
    assert caught.value.row == repr((Decimal("5"), "b"))


def test_plaintext_in_an_encrypted_attribute_is_refused(ddb: Any) -> None:
    """A string where a ciphertext belongs raises DecryptionError; it is never passed through as the value."""
    ddb.put_item(TableName="patients", Item={"patient_id": {"S": "p-1"}, "ssn": {"S": "123-45-6789"}})
    with pytest.raises(fieldcrypt.DecryptionError, match=r"^cannot decrypt patients.ssn \(row 'p-1'\)$"):
        Patient.get("p-1")


def test_tampered_ciphertext_fails(ddb: Any) -> None:
    """Flipping one bit of the stored ciphertext makes the read fail."""
    Patient("p-1", ssn="123-45-6789").save()
    blob = bytearray(raw_item(ddb, "patients", {"patient_id": {"S": "p-1"}})["ssn"]["B"])
    blob[-1] ^= 1
    ddb.update_item(
        TableName="patients",
        Key={"patient_id": {"S": "p-1"}},
        UpdateExpression="SET ssn = :v",
        ExpressionAttributeValues={":v": {"B": bytes(blob)}},
    )
    with pytest.raises(fieldcrypt.DecryptionError):
        Patient.get("p-1")


def test_wrong_type_is_refused_and_nothing_written(ddb: Any) -> None:
    """A value of the wrong type raises TypeError naming the attribute; the item is not written."""
    with pytest.raises(TypeError, match=r"^patients.ssn: expected str, got int$"):
        Patient("p-1", ssn=123).save()
    with pytest.raises(TypeError, match=r"^patients.weight: expected int or float, got bool$"):
        Patient("p-1", weight=True).save()
    with pytest.raises(TypeError, match=r"^patients.born: expected datetime, got date$"):
        Patient("p-1", born=dt.date(2000, 1, 1)).save()
    assert "Item" not in ddb.get_item(TableName="patients", Key={"patient_id": {"S": "p-1"}})


def test_projection_without_the_key_is_refused() -> None:
    """Reading an encrypted attribute without the item key it is bound to raises a clear error."""
    Patient("p-1", ssn="123-45-6789").save()
    with pytest.raises(fieldcrypt.ConfigurationError, match="lacks its key attribute"):
        list(Patient.scan(attributes_to_get=["ssn"]))
    assert [p.ssn for p in Patient.scan(attributes_to_get=["patient_id", "ssn"])] == ["123-45-6789"]


def test_repr_hides_encrypted_values() -> None:
    """A model's repr shows encrypted attributes as <encrypted>, never their plaintext."""
    text = repr(Patient("p-1", name="Ada", ssn="123-45-6789"))
    assert "123-45-6789" not in text
    assert "ssn=<encrypted>" in text
    assert "name='Ada'" in text


def test_exports_that_bypass_the_model_are_refused() -> None:
    """to_simple_dict serialises attributes without the item, so it is refused rather than guessing."""
    with pytest.raises(
        fieldcrypt.ConfigurationError, match="can only be read or written through an EncryptedModel"
    ):
        Patient("p-1", ssn="123-45-6789").to_simple_dict()


def test_missing_item_key_is_refused() -> None:
    """Saving without the hash key cannot bind the values to the item: a clear error, not a guess."""
    with pytest.raises(fieldcrypt.ConfigurationError, match="set the item's hash"):
        Patient(ssn="123-45-6789").serialize()


def test_non_null_encrypted_attribute_requires_a_value(ddb: Any) -> None:
    """null follows the inner attribute: a required encrypted attribute left None is refused, nothing written."""
    from pynamodb.exceptions import AttributeNullError

    with pytest.raises(AttributeNullError, match="diagnosis"):
        Visit(1, "d").save()
    assert "Item" not in ddb.get_item(TableName="visits", Key={"clinic": {"N": "1"}, "day": {"S": "d"}})
