"""Codecs: every supported Python type round-trips exactly; wrong types are refused, not coerced."""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldcrypt import codecs


class Color(enum.Enum):
    RED = 1
    GREEN = "g"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)

fixed_offsets = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    ).map(lambda d: dt.timedelta(minutes=d // dt.timedelta(minutes=1))),
)

CASES: list[tuple[codecs.Codec[Any], st.SearchStrategy[Any]]] = [
    (codecs.TEXT, st.text()),
    (codecs.BYTES, st.binary()),
    (codecs.INT, st.integers()),
    (codecs.DECIMAL, st.decimals(allow_nan=False, allow_infinity=False)),
    (codecs.FLOAT, st.floats(allow_nan=False)),
    (codecs.BOOL, st.booleans()),
    (codecs.DATE, st.dates()),
    # Offsets, not zone names, are what the format keeps (docs/format.md): generate fixed offsets.
    (codecs.DATETIME, st.datetimes(timezones=st.none() | fixed_offsets)),
    (codecs.TIME, st.times()),
    (codecs.TIMEDELTA, st.timedeltas()),
    (codecs.UUID, st.uuids()),
    (codecs.EnumCodec(Color), st.sampled_from(Color)),
    (codecs.JSON, json_values),
]


@pytest.mark.parametrize(("codec", "values"), CASES, ids=[c.name for c, _ in CASES])
def test_round_trip_keeps_value_and_type(codec: codecs.Codec[Any], values: st.SearchStrategy[Any]) -> None:
    """from_bytes(to_bytes(v)) == v, with exactly the same type, for generated values (or a refusal)."""

    @given(values)
    def check(value: Any) -> None:
        if isinstance(value, dt.datetime | dt.time) and value.fold and value.utcoffset() is None:
            with pytest.raises(TypeError, match="fold=1"):  # ISO 8601 would drop the fold: refused
                codec.to_bytes(value)
            return
        back = codec.from_bytes(codec.to_bytes(value))
        assert back == value
        assert type(back) is type(value)
        if isinstance(value, dt.datetime | dt.time):
            assert back.utcoffset() == value.utcoffset()
        if isinstance(value, Decimal):
            assert back.as_tuple() == value.as_tuple()  # scale kept: Decimal("1.10") stays

    check()


def test_named_zones_keep_their_offset_not_their_name() -> None:
    """A zoneinfo datetime comes back as the same instant with the same offset (the name is dropped)."""
    from zoneinfo import ZoneInfo

    value = dt.datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Paris"))
    back = codecs.DATETIME.from_bytes(codecs.DATETIME.to_bytes(value))
    assert back == value
    assert back.utcoffset() == value.utcoffset()


def test_edge_values() -> None:
    """Negative zero, infinities, NaN, extreme dates and huge decimals survive."""
    assert math.copysign(1, codecs.FLOAT.from_bytes(codecs.FLOAT.to_bytes(-0.0))) == -1
    assert math.isnan(codecs.FLOAT.from_bytes(codecs.FLOAT.to_bytes(math.nan)))
    assert codecs.DATE.from_bytes(codecs.DATE.to_bytes(dt.date.max)) == dt.date.max
    huge = Decimal("-1234567890123456789012345678901234567890.000000000000000000001")
    assert codecs.DECIMAL.from_bytes(codecs.DECIMAL.to_bytes(huge)) == huge
    offset = dt.timezone(dt.timedelta(hours=-3, minutes=-30))
    value = dt.datetime(2026, 11, 28, 12, 0, tzinfo=offset)
    assert codecs.DATETIME.from_bytes(codecs.DATETIME.to_bytes(value)).tzinfo == offset


@pytest.mark.parametrize(
    ("codec", "value", "message"),
    [
        (codecs.TEXT, b"bytes", "expected str, got bytes"),
        (codecs.INT, True, "expected int, got bool"),
        (codecs.INT, "12", "expected int, got str"),
        (codecs.DECIMAL, 1.5, "expected Decimal, got float"),
        (codecs.BOOL, 1, "expected bool, got int"),
        (codecs.DATE, dt.datetime(2026, 1, 1), "expected date, got datetime"),
        (codecs.UUID, str(uuid.uuid4()), "expected UUID, got str"),
        (codecs.EnumCodec(Color), "RED", "expected Color, got str"),
        (codecs.JSON, {1, 2}, "not JSON-serialisable"),
    ],
)
def test_wrong_types_are_refused(codec: codecs.Codec[Any], value: Any, message: str) -> None:
    """A value of the wrong type raises TypeError naming both types; nothing is coerced."""
    with pytest.raises(TypeError, match=message):
        codec.to_bytes(value)
