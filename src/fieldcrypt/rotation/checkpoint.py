"""Where a job got to: the last primary key of the last committed batch, in a small JSON file.

Written after each commit (write to a temporary file, then rename: a kill -9 leaves the old or
the new checkpoint, never half of one). Losing it costs only a rescan: the engine skips values
already done, so starting over is always safe, just slower.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_JSONABLE = (int, str)


class Checkpoint:
    """The resume position of one job (table, column, action and segment)."""

    def __init__(self, directory: str | os.PathLike[str] | None, job: str) -> None:
        self.path = None if directory is None else Path(directory) / (re.sub(r"[^\w.-]", "_", job) + ".json")

    def load(self, fingerprint: str) -> list[Any] | None:
        """The last key written by a run with the same ``fingerprint`` (action and target key)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # unreadable: start over, which is safe
        if state.get("fingerprint") != fingerprint:
            return None
        last = state.get("last")
        return list(last) if isinstance(last, list) else None

    def save(self, fingerprint: str, last: tuple[Any, ...]) -> None:
        if self.path is None or not all(isinstance(v, _JSONABLE) for v in last):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"fingerprint": fingerprint, "last": list(last)}), encoding="utf-8")
        os.replace(temporary, self.path)

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
