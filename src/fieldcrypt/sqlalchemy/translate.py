"""Where a statement really reaches a table: its schema after ``schema_translate_map``.

SQLAlchemy compiles a statement once for every translation map, keeping the same column types,
so the same bind and result processors: they are cached per type and dialect, a result's
processors are cached with its compiled statement, and they run lazily, as rows are fetched. A
processor therefore cannot know which schema a value goes to or comes from. Row-bound values
(``bind_row=True``) never rely on a processor's place: they are sealed where fieldcrypt sees the
execution options (the mapper's flush hooks, ``Engine.before_execute``) and opened by the ORM
load hook, which reads the options of the query and of its connection. So a translated table is
served when every encrypted column of it is row-bound and not searchable (a search's blind-index
tokens are computed for the declared place when the query is built), and refused otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table
from sqlalchemy.sql import ClauseElement, visitors
from sqlalchemy.sql.ddl import ExecutableDDLElement

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.sqlalchemy.types import Encrypted

TRANSLATE = "schema_translate_map"
Translation = Mapping[str | None, str | None]
_LOADED = "fieldcrypt_schema_translate_map"  # QueryContext.attributes: the map of one ORM load


def effective_name(table: Any, translate: Translation | None) -> str:
    """``table``'s place name as a statement under ``translate`` reaches it: "schema.table", or
    the bare name in the default schema (what ``Table.fullname`` gives for a declared schema)."""
    if not translate or table.schema not in translate:
        return str(table.fullname)
    schema = translate[table.schema]
    return f"{schema}.{table.name}" if schema else str(table.name)


def refuse_unfollowable(statement: Any, translate: Translation) -> None:
    """``Engine.before_execute``: refuse a statement whose translated tables hold encrypted
    columns bound by their processors (not row-bound) or searched through blind-index tokens.
    DDL (``create_all`` under a map) and driver SQL carry no values: let through."""
    if not isinstance(statement, ClauseElement) or isinstance(statement, ExecutableDDLElement):
        return
    for element in visitors.iterate(statement):
        if not isinstance(element, Table):
            continue
        moved = effective_name(element, translate)
        if moved == element.fullname:
            continue
        for column in element.columns:
            type_ = column.type
            if not isinstance(type_, Encrypted) or (type_.bind_row and not type_.searchable):
                continue
            why = "searchable" if type_.searchable else "not bound to its row"
            raise ConfigurationError(
                f"{element.fullname}.{column.name} is encrypted and {why}, and schema_translate_map "
                f"moves it to {moved}: SQLAlchemy shares one compiled statement (its processors, "
                "and a search's blind-index tokens) across translations, so its values would stay "
                "bound to the declared place and a value copied between tenants would decrypt; "
                "declare the column bind_row=True (not searchable) to serve it per schema, or "
                "declare the table per schema (Table.to_metadata(..., schema=...))"
            )


def loaded_translation(context: Any) -> Translation | None:
    """The map an ORM load ran under (``load`` / ``refresh`` events' ``QueryContext``): the
    statement's or ``Session.execute``'s own, else its connection's (an engine's
    ``execution_options``, ``Session.connection(execution_options=...)``). Found once per load."""
    attributes = context.attributes
    if _LOADED in attributes:
        found: Translation | None = attributes[_LOADED]
        return found
    options = context.execution_options
    if TRANSLATE in options:
        found = options[TRANSLATE]
    else:
        # The connection the load ran on (already open in the session's transaction); the copy,
        # because Session.connection pops "bind" from the dictionary it is given.
        conn = context.session.connection(bind_arguments=dict(context.bind_arguments or {}))
        found = conn.get_execution_options().get(TRANSLATE)
    attributes[_LOADED] = found
    return found
