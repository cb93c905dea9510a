"""Alembic internals fieldcrypt reads, each behind one function that fails loudly when gone.

Supported: Alembic 1.18 and later 1.x. The operations, rewriter, renderers and comparators use
Alembic's documented extension points; only rendering a column type the way autogenerate does
(``render_item`` hooks, ``sqlalchemy`` prefix, imports) has no public function.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import render

from fieldcrypt._hostcompat import internal


def render_type(type_: Any, autogen_context: Any) -> str:
    """``type_`` as autogenerate writes it in a revision (through the user's ``render_item``)."""
    repr_type = internal(
        render, "_repr_type", host="alembic", why="write existing_type= in a generated revision"
    )
    result: str = repr_type(type_, autogen_context)
    return result
