"""Per-segment checkpoints of a re-encryption job, so an interrupted job resumes where it stopped.

One JSON file per (table, attribute, segment, total segments), rewritten atomically after every
page: the scan position (DynamoDB's LastEvaluatedKey, binary as base64), the counts so far, and
whether the segment finished. Separate files let segments run as separate jobs on separate
machines (with a shared directory, or each its own).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fieldcrypt.pynamodb import wire


@dataclass
class SegmentState:
    """Where one segment stands."""

    start: dict[str, Any] | None = None
    done: bool = False
    counts: dict[str, int] = field(default_factory=dict)


class Checkpoints:
    """Reads and writes segment states under ``directory`` (None: keep nothing, start over)."""

    def __init__(self, directory: str | os.PathLike[str] | None, table: str, attribute: str, total: int):
        self.directory = Path(directory) if directory is not None else None
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{table}.{attribute}")
        self._stem = f"dynamodb-{safe}"
        self._total = total
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, segment: int) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{self._stem}.{segment}-of-{self._total}.json"

    def load(self, segment: int) -> SegmentState:
        path = self.path(segment)
        if path is None or not path.exists():
            return SegmentState()
        data = json.loads(path.read_text(encoding="utf-8"))
        start = data.get("start")
        return SegmentState(
            start={k: wire.from_json(v) for k, v in start.items()} if start else None,
            done=bool(data.get("done")),
            counts={k: int(v) for k, v in data.get("counts", {}).items()},
        )

    def save(self, segment: int, state: SegmentState) -> None:
        path = self.path(segment)
        if path is None:
            return
        start = {k: wire.to_json(v) for k, v in state.start.items()} if state.start else None
        text = json.dumps({"start": start, "done": state.done, "counts": state.counts}, sort_keys=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)  # atomic: a crash leaves the old checkpoint or the new one
