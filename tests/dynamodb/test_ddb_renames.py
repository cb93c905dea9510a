"""DynamoDB table and attribute renames: bound_as reads the old binding, the rebind job moves it.

DynamoDB renames nothing: a table "rename" copies its items to a new table (ciphertexts copied
as they are, still bound to the old table name); an attribute rename is a new name in the model
while items still hold the old one. Each test reads every value before, during and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.dynamodb import EncryptedField, ItemEncryptor
from fieldcrypt.dynamodb.rebind import Rebinder
from fieldcrypt.errors import ConfigurationError, DecryptionError
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel

N = 12
OLD = ("people", "ssn")


def digits(value: str) -> str:
    return value.replace("-", "")


def ssn(i: int) -> str:
    return f"000-00-{i:04d}"


def _model(table: str, attribute: str, bound_as: tuple[str, str] | None) -> type[EncryptedModel]:
    """A person model on ``table`` whose encrypted SSN is ``attribute`` (Python and DynamoDB name),
    searchable through a GSI on ``ssn_bidx`` (the index attribute keeps its name across renames)."""

    class BySsn(GlobalSecondaryIndex[Any]):
        class Meta:
            index_name = "ssn-index"
            projection = AllProjection()

        ssn_bidx = BlindIndexAttribute(hash_key=True)

    class Meta:
        table_name = table
        region = "us-east-1"
        billing_mode = "PAY_PER_REQUEST"

    namespace = {
        "Meta": Meta,
        "person_id": UnicodeAttribute(hash_key=True),
        attribute: EncryptedAttribute(UnicodeAttribute(null=True), keyring="pii", bound_as=bound_as),
        "ssn_bidx": BlindIndexAttribute(of=attribute, normalizer=digits),
        "by_ssn": BySsn(),
    }
    return type(f"Person_{table}_{attribute}_{bound_as is not None}", (EncryptedModel,), namespace)


def _encryptor(table: str, attribute: str) -> ItemEncryptor:
    """The attribute as the application declares it, for the rebind job's new blind-index tokens."""
    field = EncryptedField("S", keyring="pii", index_attribute="ssn_bidx", normalizer=digits)
    return ItemEncryptor(table=table, key_attributes=["person_id"], attributes={attribute: field})


def _searchable_job(
    ddb: Any, keyring: fieldcrypt.Keyring, table: str, attribute: str, segments: int
) -> Rebinder:
    """A rebind of ``table.attribute`` from OLD in ``segments`` segments, writing new blind-index tokens."""
    encryptor = _encryptor(table, attribute)
    return Rebinder(
        ddb, table, attribute, from_=OLD, keyring=keyring, total_segments=segments, encryptor=encryptor
    )


@pytest.fixture
def people(moto_endpoint: str, keyring: fieldcrypt.Keyring, ddb: Any) -> Iterator[type[EncryptedModel]]:
    """Table ``people`` with N persons written by the original model (ssn), and an empty
    ``people_v2`` with the same key and GSI; both deleted afterwards."""
    original = _model("people", "ssn", None)
    copy = _model("people_v2", "ssn", None)
    for model in (original, copy):
        model.Meta.host = moto_endpoint
        model.create_table(wait=True)
    with original.batch_write() as batch:
        for i in range(N):
            batch.save(original(f"p-{i:02d}", ssn=ssn(i)))
    yield original
    for model in (original, copy):
        model.delete_table()


def _on_moto(model: type[EncryptedModel], endpoint: str) -> type[EncryptedModel]:
    model.Meta.host = endpoint
    return model


def _read_all(model: type[EncryptedModel], attribute: str) -> dict[str, str | None]:
    return {p.person_id: getattr(p, attribute) for p in model.scan(consistent_read=True)}


def _found(model: type[EncryptedModel], attribute: str, value: str) -> list[str]:
    return [p.person_id for p in model.lookup(attribute, value)]


def _raw(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    return {item["person_id"]["S"]: item for item in ddb.scan(TableName=table, ConsistentRead=True)["Items"]}


def _set_raw(ddb: Any, person_id: str, attribute: str, blob: bytes) -> None:
    """Write one attribute of a person's item as it is, past the model (a copy, a planted value)."""
    ddb.update_item(
        TableName="people",
        Key={"person_id": {"S": person_id}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": {"B": blob}},
    )


def _assert_ciphertext(ddb: Any, table: str, attribute: str, expected: dict[str, str | None]) -> None:
    for person_id, item in _raw(ddb, table).items():
        value = expected[person_id]
        if value is None:
            assert attribute not in item
            continue
        blob = item[attribute]["B"]
        assert fmt.looks_like_ciphertext(blob)
        assert value.encode() not in blob
        assert digits(value).encode() not in blob


def test_table_copy_reads_every_value_before_during_and_after(
    people: type[EncryptedModel], ddb: Any, moto_endpoint: str, keyring: fieldcrypt.Keyring
) -> None:
    """A table copied under a new name: bound_as reads the copied values, lookups find them, the
    application writes meanwhile, and rebind (segment by segment) leaves nothing to the old name."""
    expected: dict[str, str | None] = {f"p-{i:02d}": ssn(i) for i in range(N)}
    assert _read_all(people, "ssn") == expected  # before
    for item in _raw(ddb, "people").values():  # the user's copy: items as they are
        ddb.put_item(TableName="people_v2", Item=item)
    _assert_ciphertext(ddb, "people_v2", "ssn", expected)

    plain = _on_moto(_model("people_v2", "ssn", None), moto_endpoint)
    with pytest.raises(DecryptionError):  # the trap bound_as exists for
        plain.get("p-00").ssn  # noqa: B018
    during = _on_moto(_model("people_v2", "ssn", OLD), moto_endpoint)
    assert _read_all(during, "ssn") == expected
    assert _found(during, "ssn", ssn(5)) == ["p-05"]  # tokens made at the old place still match

    job = _searchable_job(ddb, keyring, "people_v2", "ssn", segments=3)
    first = job.run([0])  # part of the move
    assert 0 < first["rebound"] < N
    during("p-new", ssn=ssn(99)).save()  # the application writes meanwhile
    expected["p-new"] = ssn(99)
    changed = during.get("p-03")
    changed.update(actions=[during.ssn.set(ssn(33))])
    expected["p-03"] = ssn(33)
    assert _read_all(during, "ssn") == expected  # during: both bindings read
    assert all(_found(during, "ssn", v) == [k] for k, v in expected.items() if v)

    rest = job.run([1, 2])
    assert first["rebound"] + rest["rebound"] + rest["current"] == N + 1
    assert first["failed"] == rest["failed"] == 0
    assert _read_all(plain, "ssn") == expected  # after: no bound_as needed
    assert all(_found(plain, "ssn", v) == [k] for k, v in expected.items() if v)
    _assert_ciphertext(ddb, "people_v2", "ssn", expected)
    again = Rebinder(ddb, "people_v2", "ssn", from_=OLD, keyring=keyring).run()
    assert (again["rebound"], again["current"], again["failed"]) == (0, N + 1, 0)


def test_attribute_rename_reads_every_value_before_during_and_after(
    people: type[EncryptedModel], ddb: Any, moto_endpoint: str, keyring: fieldcrypt.Keyring
) -> None:
    """ssn renamed tax_id: items not yet moved read their old attribute; the application's writes
    and removals drop the old copy; rebind moves the rest and removes every ssn attribute."""
    expected: dict[str, str | None] = {f"p-{i:02d}": ssn(i) for i in range(N)}
    during = _on_moto(_model("people", "tax_id", OLD), moto_endpoint)
    assert _read_all(during, "tax_id") == expected
    assert _found(during, "tax_id", ssn(4)) == ["p-04"]

    job = _searchable_job(ddb, keyring, "people", "tax_id", segments=2)
    first = job.run([0])
    assert 0 < first["rebound"] < N  # part of the move
    unmoved = [k for k, item in _raw(ddb, "people").items() if "ssn" in item]
    for person_id in unmoved[:1]:  # the application updates an item not yet moved
        during.get(person_id).update(actions=[during.tax_id.set(ssn(77))])
        expected[person_id] = ssn(77)
    for person_id in unmoved[1:2]:  # and clears another: the old value must not come back
        during.get(person_id).update(actions=[during.tax_id.remove()])
        expected[person_id] = None
    assert all("ssn" not in _raw(ddb, "people")[k] for k in unmoved[:2])
    assert _read_all(during, "tax_id") == expected  # during
    assert all(_found(during, "tax_id", v) == [k] for k, v in expected.items() if v)

    rest = job.run([1])
    assert rest["failed"] == 0
    after = _on_moto(_model("people", "tax_id", None), moto_endpoint)
    assert _read_all(after, "tax_id") == expected
    assert all(_found(after, "tax_id", v) == [k] for k, v in expected.items() if v)
    assert all("ssn" not in item for item in _raw(ddb, "people").values())
    _assert_ciphertext(ddb, "people", "tax_id", expected)


def test_application_write_during_rebind_wins(
    people: type[EncryptedModel], ddb: Any, moto_endpoint: str, keyring: fieldcrypt.Keyring
) -> None:
    """A write between the job's read and its conditional write wins; the job reads again and keeps it."""
    during = _on_moto(_model("people", "tax_id", OLD), moto_endpoint)
    raced: list[str] = []

    def application_writes_first(params: dict[str, Any], **_: Any) -> None:
        if not raced:
            raced.append(params["Key"]["person_id"]["S"])
            during.get(raced[0]).update(actions=[during.tax_id.set("999-99-9999")])

    ddb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", application_writes_first)
    try:
        counts = Rebinder(ddb, "people", "tax_id", from_=OLD, keyring=keyring).run()
    finally:
        ddb.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", application_writes_first)
    assert (counts["conflicts"], counts["rebound"], counts["current"]) == (1, N - 1, 1)
    assert during.get(raced[0]).tax_id == "999-99-9999"
    assert (
        _read_all(_on_moto(_model("people", "tax_id", None), moto_endpoint), "tax_id")[raced[0]]
        == "999-99-9999"
    )


def test_interrupted_rebind_resumes_from_its_checkpoint(
    people: type[EncryptedModel], ddb: Any, moto_endpoint: str, keyring: fieldcrypt.Keyring, tmp_path: Path
) -> None:
    """A rebind stopped after its first page resumes there; its checkpoints are apart from reencrypt's."""

    class Stop(Exception):
        pass

    def stop(scanned: int) -> None:
        raise Stop

    options: dict[str, Any] = {
        "from_": OLD,
        "keyring": keyring,
        "batch_size": 5,
        "checkpoint_dir": str(tmp_path),
    }
    with pytest.raises(Stop):
        Rebinder(ddb, "people", "tax_id", progress=stop, **options).run()
    assert [p.name for p in tmp_path.iterdir()] == ["dynamodb-rebind-people.tax_id.0-of-1.json"]
    resumed = Rebinder(ddb, "people", "tax_id", **options).run()
    assert resumed["segments_resumed"] == 1
    assert resumed["rebound"] == N - 5
    expected = {f"p-{i:02d}": ssn(i) for i in range(N)}
    assert _read_all(_on_moto(_model("people", "tax_id", None), moto_endpoint), "tax_id") == expected


def test_dry_run_counts_and_writes_nothing(
    people: type[EncryptedModel], ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """A dry run counts what would be re-bound; the items are untouched."""
    before = _raw(ddb, "people")
    counts = Rebinder(ddb, "people", "tax_id", from_=OLD, keyring=keyring, dry_run=True).run()
    assert counts["rebound"] == N
    assert _raw(ddb, "people") == before


def test_value_bound_elsewhere_is_counted_failed_and_left(
    people: type[EncryptedModel], ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """A value that opens neither at the new nor at the old place is listed as failed, never rewritten."""
    alien = keyring.encrypt(b"000-00-0000", fieldcrypt.Place("elsewhere", "ssn", "p-00"))
    _set_raw(ddb, "p-00", "ssn", alien)
    counts = Rebinder(ddb, "people", "tax_id", from_=OLD, keyring=keyring).run()
    assert (counts["failed"], counts["rebound"]) == (1, N - 1)
    assert _raw(ddb, "people")["p-00"]["ssn"]["B"] == alien


def test_rebind_from_itself_is_refused(
    people: type[EncryptedModel], ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """--from naming the attribute itself (or not a pair of names) is a configuration error."""
    with pytest.raises(ConfigurationError, match="renamed from"):
        Rebinder(ddb, "people", "ssn", from_=OLD, keyring=keyring)
    with pytest.raises(ConfigurationError, match="bound_as must be"):
        Rebinder(ddb, "people", "tax_id", from_=("people",), keyring=keyring)  # type: ignore[arg-type]


def test_model_may_not_declare_the_old_attribute_too() -> None:
    """A model that renames ssn to tax_id but still declares ssn is refused at class definition."""
    with pytest.raises(ConfigurationError, match="still declares"):

        class Both(EncryptedModel):
            class Meta:
                table_name = "people"

            person_id = UnicodeAttribute(hash_key=True)
            ssn = EncryptedAttribute(UnicodeAttribute(null=True), keyring="pii")
            tax_id = EncryptedAttribute(UnicodeAttribute(null=True), keyring="pii", bound_as=OLD)


def test_item_encryptor_reads_the_old_binding(
    people: type[EncryptedModel], ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """boto3 users: EncryptedField(bound_as=...) decrypts copied and not-yet-renamed items, under
    the new attribute name, and searches match the old tokens too; writes use the new names only."""
    for item in _raw(ddb, "people").values():
        ddb.put_item(TableName="people_v2", Item=item)
    field = EncryptedField("S", keyring="pii", index_attribute="ssn_bidx", normalizer=digits, bound_as=OLD)
    renamed = ItemEncryptor(table="people_v2", key_attributes=["person_id"], attributes={"tax_id": field})
    item = ddb.get_item(TableName="people_v2", Key={"person_id": {"S": "p-02"}})["Item"]
    plain = renamed.decrypt_item(item)
    assert plain["tax_id"] == {"S": ssn(2)}
    assert "ssn" not in plain
    assert item["ssn_bidx"]["B"] in renamed.search_tokens("tax_id", {"S": ssn(2)})
    assert renamed.verified("tax_id", {"S": ssn(2)}, [item]) == [plain]
    written = renamed.encrypt_item({"person_id": {"S": "p-02"}, "tax_id": {"S": ssn(2)}})
    assert set(written) == {"person_id", "tax_id", "ssn_bidx"}
    assert fmt.looks_like_ciphertext(written["tax_id"]["B"])
    without = ItemEncryptor(
        table="people_v2",
        key_attributes=["person_id"],
        attributes={"ssn": EncryptedField("S", keyring="pii")},
    )
    with pytest.raises(DecryptionError):
        without.decrypt_item(item)
    with pytest.raises(ConfigurationError, match="bound_as must be"):
        EncryptedField("S", keyring="pii", bound_as="people.ssn")  # type: ignore[arg-type]


def test_bound_as_accepts_only_the_same_item_at_the_named_old_place(
    people: type[EncryptedModel], ddb: Any, moto_endpoint: str, keyring: fieldcrypt.Keyring
) -> None:
    """Under bound_as, another item's old value or another attribute's value copied in is still a DecryptionError."""
    renamed = _on_moto(_model("people", "tax_id", OLD), moto_endpoint)
    items = _raw(ddb, "people")
    other_attribute = keyring.encrypt(b"000-00-0002", fieldcrypt.Place("people", "notes", "p-02"))
    planted = {
        "p-01": {"ssn": items["p-02"]["ssn"]},  # another item's value under the old name
        "p-02": {"tax_id": {"B": other_attribute}},  # another attribute's value under the new name
        "p-03": {"tax_id": items["p-04"]["ssn"]},  # another item's old value under the new name
    }
    for person_id, attributes in planted.items():
        ddb.put_item(TableName="people", Item={"person_id": {"S": person_id}, **attributes})
        with pytest.raises(DecryptionError):
            renamed.get(person_id).tax_id  # noqa: B018
    assert renamed.get("p-05").tax_id == ssn(5)


def test_rebind_progress_is_counted_under_operation_rebind(
    people: type[EncryptedModel], ddb: Any, keyring: fieldcrypt.Keyring, recorder: Any
) -> None:
    """Rebinding a copied table's N items counts N processed in fieldcrypt.rotation.rows under operation rebind."""
    from metrics_helpers import attrs

    for item in _raw(ddb, "people").values():
        ddb.put_item(TableName="people_v2", Item=item)
    before = recorder.collect()
    assert Rebinder(ddb, "people_v2", "ssn", from_=OLD, keyring=keyring).run()["rebound"] == N
    _assert_ciphertext(ddb, "people_v2", "ssn", {f"p-{i:02d}": ssn(i) for i in range(N)})
    assert recorder.delta(before)["fieldcrypt.rotation.rows"] == {
        attrs(operation="rebind", table="people_v2", column="ssn", outcome="processed"): N
    }


def test_stale_old_copy_beside_a_rebound_value_is_removed(
    people: type[EncryptedModel], ddb: Any, moto_endpoint: str, keyring: fieldcrypt.Keyring
) -> None:
    """An item holding the new attribute (at its own place) and a stale old one: the job keeps the new value and removes the old name only."""
    fresh = keyring.encrypt(b"111-11-1111", fieldcrypt.Place("people", "tax_id", "p-00"))
    _set_raw(ddb, "p-00", "tax_id", fresh)
    counts = Rebinder(ddb, "people", "tax_id", from_=OLD, keyring=keyring).run()
    assert (counts["current"], counts["rebound"], counts["failed"]) == (1, N - 1, 0)
    item = _raw(ddb, "people")["p-00"]
    assert "ssn" not in item
    assert item["tax_id"]["B"] == fresh
    assert _on_moto(_model("people", "tax_id", None), moto_endpoint).get("p-00").tax_id == "111-11-1111"
