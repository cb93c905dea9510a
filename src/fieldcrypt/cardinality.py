"""Refusing blind indexes on columns with a handful of possible values (both integrations).

A blind index gives equal values equal tokens. When a column can hold only a few values (a
boolean, a small enum), anyone who can read the table and knows the value of one row learns the
value of every row with the same token, and token frequencies alone often name the values. So such
an index is refused unless the application says it accepts that, explicitly.
"""

from __future__ import annotations

from fieldcrypt.errors import ConfigurationError

# Up to this many possible values a column counts as low-cardinality: with so few tokens, a few
# known rows (or a known distribution) decode the whole column.
MAX_LOW_CARDINALITY = 16


def check_index_cardinality(declared: str, values: int | None, *, allowed: bool) -> None:
    """Refuse a blind index over ``values`` possible values (None: unbounded) unless ``allowed``.

    Raises:
        ConfigurationError: the column has at most :data:`MAX_LOW_CARDINALITY` values.
    """
    if allowed or values is None or values > MAX_LOW_CARDINALITY:
        return
    raise ConfigurationError(
        f"{declared} can hold only {values} values, so a blind index on it reveals every row's value to "
        "anyone who knows one row's (equal values share a token, and token counts give the rest away); "
        "do not make it searchable, or pass allow_low_cardinality_index=True to accept that leak"
    )
