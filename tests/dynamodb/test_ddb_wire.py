"""The item-key row encoding shared by the PynamoDB path and the raw boto3 path, and target parsing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from ddb_models import Patient, Visit

import fieldcrypt
from fieldcrypt import Place
from fieldcrypt.dynamodb import wire
from fieldcrypt.dynamodb.tables import EncryptedColumn, check_segment, parse_target


@pytest.mark.parametrize(
    ("model_key", "raw_key"),
    [
        ((5, "2026-01-02"), {"clinic": {"N": "5"}, "day": {"S": "2026-01-02"}}),
        ((5.0, "d"), {"clinic": {"N": "5"}, "day": {"S": "d"}}),
        ((100, "d"), {"clinic": {"N": "1E+2"}, "day": {"S": "d"}}),
        ((-0.25, "d"), {"clinic": {"N": "-0.250"}, "day": {"S": "d"}}),
    ],
)
def test_model_and_raw_paths_encode_the_same_row(model_key: tuple[Any, str], raw_key: dict[str, Any]) -> None:
    """The model's key and the raw item's key give byte-identical Place encodings (DynamoDB number forms included)."""
    visit = Visit(*model_key)
    raw_row = wire.row_key(raw_key, ["clinic", "day"])
    assert (
        Place("visits", "diagnosis", visit._row()).encode() == Place("visits", "diagnosis", raw_row).encode()
    )


def test_row_encoding_is_pinned() -> None:
    """Known answer: a string hash key encodes as one typed, length-prefixed component."""
    row = Patient("p-1")._row()
    assert row == "p-1"
    assert Place("patients", "ssn", row).encode().hex() == (
        "0008" + b"patients".hex() + "0003" + b"ssn".hex() + "01" + "0001" + "73" + "00000003" + b"p-1".hex()
    )
    assert wire.row_key({"k": {"N": "5"}, "r": {"B": b"\x01"}}, ["k", "r"]) == (Decimal(5), b"\x01")


def test_raw_engine_decrypts_what_the_model_wrote(
    tables: None, ddb: Any, keyring: fieldcrypt.Keyring
) -> None:
    """A value written through the model decrypts on the raw path (the re-encryption engine's), and vice versa."""
    Visit(7, "d", diagnosis="flu").save()
    column = EncryptedColumn.open(ddb, "visits", "diagnosis")
    item = ddb.get_item(TableName="visits", Key={"clinic": {"N": "7"}, "day": {"S": "d"}})["Item"]
    assert keyring.decrypt(item["diagnosis"]["B"], column.place(item)) == b"flu"
    blob = keyring.encrypt(b"cold", column.place(item))
    ddb.put_item(TableName="visits", Item={**item, "diagnosis": {"B": blob}})
    assert Visit.get(7, "d").diagnosis == "cold"


def test_row_key_refuses_bad_keys() -> None:
    """A missing key attribute or a non-key type is a clear error."""
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"lacks its key attribute\(s\) \['r'\]"):
        wire.row_key({"k": {"S": "a"}}, ["k", "r"])
    with pytest.raises(
        fieldcrypt.ConfigurationError, match="DynamoDB key attributes are S, N or B; got BOOL"
    ):
        wire.row_key({"k": {"BOOL": True}}, ["k"])
    with pytest.raises(fieldcrypt.ConfigurationError, match="'abc' is not a DynamoDB number"):
        wire.row_key({"k": {"N": "abc"}}, ["k"])


def test_typed_json_round_trip() -> None:
    """Typed values with binary, sets, maps and lists survive to_json/from_json."""
    value = {"M": {"b": {"B": b"\x00\xff"}, "bs": {"BS": [b"a"]}, "l": {"L": [{"N": "1"}, {"NULL": True}]}}}
    assert wire.from_json(wire.to_json(value)) == value


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        ("dynamodb:patients.ssn", ("patients", "ssn")),
        ("patients.ssn", ("patients", "ssn")),
        ("dynamodb:prod.patients.ssn", ("prod.patients", "ssn")),
    ],
)
def test_parse_target(target: str, parsed: tuple[str, str]) -> None:
    """TABLE.ATTRIBUTE, the attribute after the last dot (table names may contain dots)."""
    assert parse_target(target) == parsed


@pytest.mark.parametrize(
    "target", ["dynamodb:patients", "dynamodb:.ssn", "dynamodb:patients.", "dynamodb:a b.c"]
)
def test_parse_target_refuses_malformed(target: str) -> None:
    """A malformed target says what the form is."""
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"write dynamodb:TABLE\.ATTRIBUTE"):
        parse_target(target)


@pytest.mark.parametrize(("segment", "total"), [(8, 8), (-1, 8), (0, 0)])
def test_segment_out_of_range(segment: int, total: int) -> None:
    """Segments are numbered from 0 as DynamoDB does; others are refused with the valid range."""
    with pytest.raises(fieldcrypt.ConfigurationError, match=f"segment {segment}/{total} is out of range"):
        check_segment(segment, total)


def test_checkpoint_keeps_binary_and_numeric_scan_positions(tmp_path: Any) -> None:
    """A checkpoint round-trips a LastEvaluatedKey with binary and numeric parts, and counts."""
    from fieldcrypt.dynamodb.checkpoint import Checkpoints, SegmentState

    checkpoints = Checkpoints(tmp_path, "t/1", "a b", 8)
    start = {"k": {"B": b"\x00\xff"}, "n": {"N": "12"}}
    checkpoints.save(3, SegmentState(start=start, counts={"scanned": 5}))
    assert checkpoints.load(3) == SegmentState(start=start, done=False, counts={"scanned": 5})
    assert checkpoints.load(4) == SegmentState()
    assert [p.name for p in tmp_path.iterdir()] == ["dynamodb-t_1.a_b.3-of-8.json"]
    (tmp_path / "dynamodb-t_1.a_b.3-of-8.json").write_text("{half a checkpo")
    assert checkpoints.load(3) == SegmentState()  # unreadable: the segment starts over, which is safe
