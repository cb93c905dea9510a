"""One line for a service that is down or missing: a database that refuses connections, a table
that does not exist, an AWS endpoint that does not answer. The CLI exits 3 with it instead of a
traceback (and never 1, which means "work remains").

A database's own message is shown only for errors about connections and schema objects; for
others (a refused INSERT, bad data) only the kind is named, since MySQL quotes values in those.
"""

from __future__ import annotations

SHOWN = ("OperationalError", "InterfaceError", "ProgrammingError")
# How SQLite, PostgreSQL and MySQL/MariaDB say that a table is missing.
MISSING_TABLE = ("no such table", "does not exist", "doesn't exist")


def describe(exc: BaseException) -> str | None:
    """The line to print for ``exc``, or None when it is not a service failure (a bug: re-raise)."""
    return _database(exc) or _aws(exc)


def _database(exc: BaseException) -> str | None:
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover - the CLI extra installs SQLAlchemy
        return None
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    kind = type(exc).__name__
    if kind not in SHOWN:
        return f"the database refused a statement ({kind}); nothing more is shown, as it may quote values"
    first = _first_line(str(exc.orig) if exc.orig is not None else str(exc))
    missing = any(words in first.lower() for words in MISSING_TABLE)
    hint = (
        "; create the table (the key store: `fieldcrypt init`, or op.create_key_store() in a migration)"
        if missing
        else "; check --database-url and that the server is up"
    )
    return f"database error ({kind}): {first}{hint}"


def _aws(exc: BaseException) -> str | None:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # boto3 absent: no AWS call was made
        return None
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "a call")
        return f"AWS {operation} failed ({error.get('Code')}): {_first_line(str(error.get('Message', '')))}"
    if isinstance(exc, BotoCoreError):
        return f"AWS unreachable or not configured ({type(exc).__name__}): {_first_line(str(exc))}"
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "(no message)"
