"""Per-segment checkpoints of a re-encryption job, so an interrupted job resumes where it stopped.

One :class:`~fieldcrypt.checkpoint.ProgressFile` per (table, attribute, segment, total segments),
rewritten after every page: the scan position (DynamoDB's LastEvaluatedKey, binary as base64),
the counts so far, and whether the segment finished. Separate files let segments run as separate
jobs on separate machines (with a shared directory, or each its own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from fieldcrypt.checkpoint import ProgressFile
from fieldcrypt.dynamodb import wire


@dataclass
class SegmentState:
    """Where one segment stands."""

    start: dict[str, Any] | None = None
    done: bool = False
    counts: dict[str, int] = field(default_factory=dict)


class Checkpoints:
    """Reads and writes segment states under ``directory`` (None: keep nothing, start over).
    ``job`` keeps another kind of job's files apart (re-encryption's have no prefix)."""

    def __init__(
        self, directory: str | os.PathLike[str] | None, table: str, attribute: str, total: int, job: str = ""
    ):
        self._directory = directory
        self._stem = f"dynamodb-{job}{table}.{attribute}"
        self._total = total

    def file(self, segment: int) -> ProgressFile:
        return ProgressFile(self._directory, f"{self._stem}.{segment}-of-{self._total}")

    def load(self, segment: int) -> SegmentState:
        data = self.file(segment).read()
        if data is None:
            return SegmentState()
        start = data.get("start")
        return SegmentState(
            start={k: wire.from_json(v) for k, v in start.items()} if start else None,
            done=bool(data.get("done")),
            counts={k: int(v) for k, v in data.get("counts", {}).items()},
        )

    def save(self, segment: int, state: SegmentState) -> None:
        start = {k: wire.to_json(v) for k, v in state.start.items()} if state.start else None
        self.file(segment).write({"start": start, "done": state.done, "counts": state.counts})
