"""``--restore-type``: a SQL type name from the command line, checked against a strict grammar
and turned into a SQLAlchemy type object, so no text from the command line reaches SQL.

Accepted: a known type name, optionally with a length or a precision and scale, e.g.
``VARCHAR(11)``, ``TEXT``, ``NUMERIC(10, 2)``, ``DOUBLE PRECISION``. Anything else (a semicolon,
a quote, a comment) is refused before any work starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from fieldcrypt.errors import ConfigurationError

_GRAMMAR = re.compile(
    r"^(?P<name>[A-Za-z][A-Za-z0-9_ ]*?)\s*(?:\(\s*(?P<a>\d{1,5})\s*(?:,\s*(?P<b>\d{1,5})\s*)?\))?$"
)
_NO_ARGS: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "TEXT": sa.Text,
    "INTEGER": sa.Integer,
    "INT": sa.Integer,
    "BIGINT": sa.BigInteger,
    "SMALLINT": sa.SmallInteger,
    "BOOLEAN": sa.Boolean,
    "DATE": sa.Date,
    "TIMESTAMP": sa.DateTime,
    "DATETIME": sa.DateTime,
    "TIME": sa.Time,
    "FLOAT": sa.Float,
    "DOUBLE PRECISION": sa.Double,
    "DOUBLE": sa.Double,
    "REAL": sa.REAL,
    "UUID": sa.Uuid,
    "JSON": sa.JSON,
}
_LENGTH: dict[str, Callable[[int], sa.types.TypeEngine[Any]]] = {
    "VARCHAR": sa.String,
    "CHARACTER VARYING": sa.String,
    "CHAR": sa.CHAR,
    "CHARACTER": sa.CHAR,
}
_PRECISION: dict[str, Callable[..., sa.types.TypeEngine[Any]]] = {
    "NUMERIC": sa.Numeric,
    "DECIMAL": sa.Numeric,
}


def parse(text: str) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type ``text`` names.

    Raises:
        ConfigurationError: not of the grammar, or not a known type (the text is not echoed when
            it is not of the grammar: it could be anything).
    """
    match = _GRAMMAR.match(text.strip())
    if match is None:
        raise ConfigurationError(
            "--restore-type must be a SQL type name with an optional (length) or (precision, scale), "
            "e.g. VARCHAR(11), TEXT, NUMERIC(10, 2); nothing else is accepted"
        )
    name = " ".join(match["name"].upper().split())
    a, b = match["a"], match["b"]
    if name in _NO_ARGS and a is None:
        return _NO_ARGS[name]()
    if name in _LENGTH and b is None:
        return _LENGTH[name](int(a)) if a is not None else _LENGTH[name]()  # type: ignore[call-arg]
    if name in _PRECISION:
        return _PRECISION[name](*(int(n) for n in (a, b) if n is not None))
    known = sorted({*_NO_ARGS, *(f"{n}(n)" for n in _LENGTH), *(f"{n}(p, s)" for n in _PRECISION)})
    raise ConfigurationError(
        f"--restore-type {name!r} is not a type fieldcrypt knows; use one of {', '.join(known)}"
    )
