"""Keep plaintext out of SQLAlchemy's errors: a failed statement that binds an ``Encrypted``
column carries no parameters.

When anything fails while SQLAlchemy binds a statement's values (a KMS call refused or
unreachable, a keyring not registered, a wrong-typed value in any column of the row), it wraps
the error in ``StatementError``, whose message and ``params`` hold the statement's *raw*
parameters: the plaintext of every encrypted column of the row. The same happens with engine
logging of failed executions. This module removes those parameters, for that statement only,
through SQLAlchemy's documented ``handle_error`` event (a dialect event: one listener per engine).

It is installed on an engine's dialect the first time that dialect builds an ``Encrypted`` bind
processor, i.e. only on engines that write encrypted columns, and before the first value is
bound. The raised exception keeps its class and ``orig`` (the fieldcrypt error, for example), so
``except sqlalchemy.exc.StatementError as exc: exc.orig`` tells what failed (docs/sqlalchemy.md).
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine, ExceptionContext

NOTE = "fieldcrypt: SQL parameters hidden (the statement binds an encrypted column)"
log = logging.getLogger("fieldcrypt")
_lock = threading.Lock()
# Keyed by id(), each entry removed by a weakref callback when its object is collected (so an id
# is never reused while present): a dict lookup per statement, where a WeakSet would build a
# weak reference on every membership test.
_watched: dict[int, weakref.ref[Dialect]] = {}
_warned: dict[int, weakref.ref[Engine]] = {}


def watch(dialect: Dialect) -> None:
    """Hide the parameters of failed statements binding encrypted columns on ``dialect``'s engine."""
    if id(dialect) in _watched:
        return  # runs per row from blind-index defaults: a dict lookup, not event.contains
    if event.contains(dialect, "handle_error", _hide_parameters):
        return
    with _lock:  # event.listen is not documented as thread-safe; processors build concurrently
        if not event.contains(dialect, "handle_error", _hide_parameters):
            event.listen(dialect, "handle_error", _hide_parameters)
            _remember(_watched, dialect)


def warn_if_rows_logged(conn: Connection) -> None:
    """Warn once per engine that logs result rows (``echo="debug"``) while it reads encrypted columns.

    SQLAlchemy logs each row *after* the result processors ran, i.e. decrypted: fieldcrypt cannot
    redact that, so it says so loudly instead.
    """
    if id(conn.dialect) not in _watched:
        return  # this engine has not bound an encrypted column (yet)
    engine = conn.engine
    if id(engine) in _warned or not engine.logger.isEnabledFor(logging.DEBUG):
        return
    _remember(_warned, engine)
    log.warning(
        "fieldcrypt: %s logs result rows at DEBUG (echo='debug' or the sqlalchemy.engine logger at "
        "DEBUG): decrypted values of encrypted columns will be written to the logs; use echo=True "
        "(INFO, parameters are ciphertext) or less where plaintext must not reach logs",
        engine.url.render_as_string(hide_password=True),
    )


def _remember(seen: dict[int, Any], thing: Any) -> None:
    key = id(thing)
    seen[key] = weakref.ref(thing, lambda _: seen.pop(key, None))


def _hide_parameters(ctx: ExceptionContext) -> None:
    error = ctx.sqlalchemy_exception
    if error is None or not error.params or not _binds_encrypted(ctx.execution_context):
        return
    error.params = None  # what the message quotes and what error trackers read
    error.hide_parameters = True
    error.add_note(NOTE)


def _binds_encrypted(context: Any) -> bool:
    if context is None:
        # The statement failed while its values were being bound (before any execution
        # context existed): the parameters are the caller's raw values.
        return True
    compiled = getattr(context, "compiled", None)
    if compiled is None:
        return False  # driver-level SQL (exec_driver_sql): no type of ours bound anything
    from fieldcrypt.sqlalchemy.types import Encrypted

    return any(isinstance(bind.type, Encrypted) for bind in compiled.binds.values())
