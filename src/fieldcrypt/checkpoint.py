"""Progress files of long jobs: one small JSON document per job (or segment), replaced atomically.

Shared by the SQL batch engine and the DynamoDB re-encryptor; each keeps its own state shape in
it. Written after each committed batch or page: write a temporary file, then rename, so a kill -9
leaves the old document or the new one, never half of one. Losing a file costs only a rescan (jobs
skip values already done), so an unreadable file means "start over", which is always safe.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ProgressFile:
    """``<directory>/<name>.json`` (the name made filesystem-safe); no directory: keep nothing."""

    def __init__(self, directory: str | os.PathLike[str] | None, name: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        self.path = None if directory is None else Path(directory) / f"{safe}.json"

    def read(self) -> dict[str, Any] | None:
        """The last document written, or None when there is none or it cannot be read."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def write(self, state: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
