"""Progress lines for logs and non-terminal stderr: interval, rate, ETA, the resumed position."""

from __future__ import annotations

import pytest

from fieldcrypt.progress import ProgressLines, interval_from_environment


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_with_rate_and_eta() -> None:
    """Updates inside the interval print nothing; a line gives done/total, percent, rows/s of this run and the ETA."""
    clock, lines = Clock(), []
    meter = ProgressLines("reencrypt users.ssn (segment 1/4)", lines.append, interval=10, clock=clock)
    clock.now += 5
    meter.update(5_000, 200_000)
    assert lines == []
    clock.now += 5
    meter.update(10_000, 200_000)
    assert lines == ["reencrypt users.ssn (segment 1/4): 10000/200000 rows (5.0%), 1000 rows/s, ETA 3m10s"]
    meter.finish()
    assert lines[-1].endswith("(done)")


def test_a_resumed_run_starts_at_its_position_and_rates_only_its_own_rows() -> None:
    """After a resume at 106,000 of 200,000 the line reads from there, and the rate counts only new rows."""
    clock, lines = Clock(), []
    meter = ProgressLines("reencrypt users.ssn", lines.append, interval=0, clock=clock)
    meter.start_at(106_000)
    clock.now += 10
    meter.update(116_000, 200_000)
    assert lines == [
        "reencrypt users.ssn: 116000/200000 rows (58.0%), 1000 rows/s, ETA 1m24s, resumed at 106000"
    ]


def test_unknown_total_has_no_eta() -> None:
    """DynamoDB scans have no total: the line gives rows and rate only."""
    clock, lines = Clock(), []
    meter = ProgressLines("status dynamodb:patients.ssn", lines.append, interval=0, clock=clock)
    clock.now += 2
    meter.update(4000, None)
    assert lines == ["status dynamodb:patients.ssn: 4000 rows, 2000 rows/s"]


@pytest.mark.parametrize(("value", "seconds"), [(None, 10.0), ("0", 0.0), ("2.5", 2.5), ("soon", 10.0)])
def test_interval_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, seconds: float
) -> None:
    """FIELDCRYPT_PROGRESS_INTERVAL sets the seconds between lines (default 10; unreadable values keep it)."""
    if value is None:
        monkeypatch.delenv("FIELDCRYPT_PROGRESS_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("FIELDCRYPT_PROGRESS_INTERVAL", value)
    assert interval_from_environment() == seconds
