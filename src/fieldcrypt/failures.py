"""Rows that could not be done, as the SQL engine's reports, ``verify`` and the DynamoDB jobs list them.

All list at most :data:`MAX_FAILURES_LISTED` rows (the count covers them all), by primary key
and a message that never quotes a value.
"""

from __future__ import annotations

from typing import Any

from fieldcrypt.errors import ConfigurationError, DecryptionError

MAX_FAILURES_LISTED = 1000


def note_failure(failures: list[tuple[str, str]], row: Any, exc: Exception) -> None:
    """List ``row`` (its primary key, as :class:`~fieldcrypt.Place` takes it) and why it failed."""
    if len(failures) >= MAX_FAILURES_LISTED:
        return
    # The messages of a DecryptionError (table/column/row) and of fieldcrypt's own configuration
    # errors quote no value; other errors get their type alone, since a codec error message could
    # quote part of a value.
    ours = isinstance(exc, DecryptionError | ConfigurationError)
    message = str(exc) if ours else f"{type(exc).__name__}: unreadable value"
    failures.append((repr(row), message))
