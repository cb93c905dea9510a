"""Where a SQL job got to: the last primary key of the last committed batch.

Kept in a :class:`~fieldcrypt.checkpoint.ProgressFile` with the fingerprint of the run (action
and target data key): a run toward another key starts over rather than skip rows.
"""

from __future__ import annotations

from typing import Any

from fieldcrypt.checkpoint import ProgressFile

_JSONABLE = (int, str)


class Checkpoint(ProgressFile):
    """The resume position of one job (table, column, action and segment)."""

    def load(self, fingerprint: str) -> list[Any] | None:
        """The last key written by a run with the same ``fingerprint`` (action and target key)."""
        state = self.read()
        if state is None or state.get("fingerprint") != fingerprint:
            return None
        last = state.get("last")
        return list(last) if isinstance(last, list) else None

    def save(self, fingerprint: str, last: tuple[Any, ...]) -> None:
        # A key of another type (a date, bytes) is not kept: the rerun rescans, which is safe.
        if all(isinstance(v, _JSONABLE) for v in last):
            self.write({"fingerprint": fingerprint, "last": list(last)})
