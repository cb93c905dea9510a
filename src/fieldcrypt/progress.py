"""Progress of a long job as plain lines: rows done, rate, ETA, segment.

Used where no progress bar can be drawn: the CLI when stderr is not a terminal (CI, Kubernetes
logs, a redirect) and the Alembic operations (through logging). A line is emitted at most every
``interval`` seconds and once at the end, so a job killed at 94k rows has said how far it got.
Lines hold counts only, never a value.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

DEFAULT_INTERVAL = 10.0  # seconds between lines: often enough for a log, rare enough to read
INTERVAL_VARIABLE = "FIELDCRYPT_PROGRESS_INTERVAL"
log = logging.getLogger("fieldcrypt.progress")


def interval_from_environment() -> float:
    """``$FIELDCRYPT_PROGRESS_INTERVAL`` seconds (default 10); 0 prints every update."""
    text = os.environ.get(INTERVAL_VARIABLE, "")
    try:
        return max(0.0, float(text)) if text else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL


class ProgressLines:
    """Turns ``update(done, total)`` calls into a line every ``interval`` seconds.

    ``done`` counts from the job's start, including rows a resumed run had already done before
    it began (``resumed_at``): the rate and ETA use only the rows of this run.
    """

    def __init__(
        self,
        label: str,
        emit: Callable[[str], None],
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.emit = emit
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last_emitted = self.started
        self.done = 0
        self.total: int | None = None
        self.resumed_at = 0
        self._lock = threading.Lock()  # segments on worker threads report into one meter

    def update(self, done: int, total: int | None) -> None:
        with self._lock:
            self.done, self.total = done, total
            now = self.clock()
            if now - self.last_emitted >= self.interval:
                self.last_emitted = now
                self.emit(self.line(now))

    def start_at(self, done: int) -> None:
        """The position a resumed run starts from (rows done by earlier runs)."""
        with self._lock:
            self.resumed_at = self.done = done

    def finish(self) -> None:
        self.emit(self.line(self.clock()) + " (done)")

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = (self.done - self.resumed_at) / elapsed
        of = f"/{self.total}" if self.total is not None else ""
        percent = f" ({100 * self.done / self.total:.1f}%)" if self.total else ""
        eta = ""
        if self.total is not None and rate > 0:
            eta = f", ETA {_duration(max(self.total - self.done, 0) / rate)}"
        resumed = f", resumed at {self.resumed_at}" if self.resumed_at else ""
        return f"{self.label}: {self.done}{of} rows{percent}, {rate:.0f} rows/s{eta}{resumed}"


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def logged(label: str) -> ProgressLines:
    """Progress lines on the ``fieldcrypt.progress`` logger at INFO (the Alembic operations)."""
    return ProgressLines(label, log.info, interval=interval_from_environment())
