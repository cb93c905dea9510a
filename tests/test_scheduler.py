"""--segment auto: the segment a Kubernetes Indexed Job or an AWS Batch array job assigned."""

from __future__ import annotations

import pytest

from fieldcrypt import ConfigurationError
from fieldcrypt.rotation.table import Segment
from fieldcrypt.scheduler import segment_from_environment


@pytest.mark.parametrize(
    "environ",
    [
        {"JOB_COMPLETION_INDEX": "2", "FIELDCRYPT_SEGMENT_COUNT": "5"},
        {"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "5"},
    ],
    ids=["kubernetes", "aws-batch"],
)
def test_both_conventions_give_index_and_count(environ: dict[str, str]) -> None:
    """Each scheduler's index and count variables name segment 2/5."""
    assert segment_from_environment(environ) == (2, 5)


def test_segment_auto_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segment.parse("auto") is the segment of the process's scheduler variables."""
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "0")
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_SIZE", "3")
    assert Segment.parse("auto") == Segment(0, 3)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "neither is set"),
        ({"JOB_COMPLETION_INDEX": "1"}, "FIELDCRYPT_SEGMENT_COUNT is not"),
        ({"JOB_COMPLETION_INDEX": "x", "FIELDCRYPT_SEGMENT_COUNT": "4"}, "must be whole numbers"),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "4", "AWS_BATCH_JOB_ARRAY_SIZE": "4"}, "is not below"),
    ],
    ids=["nothing", "no-count", "malformed", "out-of-range"],
)
def test_index_without_a_count_is_refused(environ: dict[str, str], message: str) -> None:
    """A missing count, a malformed number or an index past the count is refused, never taken as 0/1."""
    with pytest.raises(ConfigurationError, match=message):
        segment_from_environment(environ)
