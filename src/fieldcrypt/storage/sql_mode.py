"""MariaDB/MySQL must be in strict mode before a ciphertext is written.

Outside strict mode, MariaDB and MySQL cut a value that is too long for its column to the
column's size and store the rest with only a warning: a truncated ciphertext can never be
decrypted again, and nothing tells the application. Every connection is checked once (its pool
record remembers), before the first write of an encrypted value through it; a non-strict session
is refused with the fix. A session that turns strict mode off after that check is not seen.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Connection

from fieldcrypt.errors import ConfigurationError

_CHECKED = "fieldcrypt_strict_sql_mode"
STRICT_MODES = frozenset({"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"})


def require_strict(conn: Connection, writes_ciphertext: Callable[[], bool] = lambda: True) -> None:
    """Refuse to write ciphertext through a MariaDB/MySQL session that is not in strict mode.

    ``writes_ciphertext`` is asked only for a connection not yet checked (it may scan a table).

    Raises:
        ConfigurationError: ``sql_mode`` has neither STRICT_TRANS_TABLES nor STRICT_ALL_TABLES.
    """
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    info = conn.connection.info  # per DBAPI connection, kept across pool checkouts
    if info.get(_CHECKED) or not writes_ciphertext():
        return
    # The DBAPI cursor, not conn.execute: this runs inside Engine.before_execute.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("SELECT @@SESSION.sql_mode")
        row = cursor.fetchone()
    finally:
        cursor.close()
    modes = {m.strip().upper() for m in str(row[0] if row else "").split(",")}
    if not modes & STRICT_MODES:
        raise ConfigurationError(
            f"this {conn.dialect.name} session's sql_mode is not strict, so a ciphertext too long for "
            "its column would be cut short and lost without an error; enable STRICT_TRANS_TABLES "
            "(server setting, or create_engine(..., connect_args={'init_command': "
            "\"SET SESSION sql_mode=CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES')\"}))"
        )
    info[_CHECKED] = True
