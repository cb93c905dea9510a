"""Alembic autogenerate support for encrypted columns: a ``render_item`` hook.

Autogenerate writes a custom type with its ``repr()`` and adds no import for it, so a revision
naming ``Encrypted`` would not run. :func:`render_item` renders it fully qualified and adds
``import fieldcrypt.sqlalchemy`` (plus the module of a Python enum or normaliser) to the revision.
The index column of a searchable column is rendered by autogenerate as an ordinary column, so the
type is rendered with ``add_index_column=False`` (the revision must not create it twice).

In ``env.py``::

    from fieldcrypt.alembic import render_item
    context.configure(..., render_item=render_item)
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import types as sat

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.sqlalchemy.types import _REPR_DEFAULTS, Encrypted

__all__ = ["render_encrypted", "render_item"]


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Alembic's ``render_item`` hook: renders ``Encrypted`` types; False for everything else."""
    if type_ == "type" and isinstance(obj, Encrypted):
        return render_encrypted(obj, autogen_context)
    return False


def render_encrypted(encrypted: Encrypted[Any], autogen_context: Any) -> str:
    """Python source that rebuilds ``encrypted`` in a revision, registering its imports."""
    imports: set[str] = autogen_context.imports
    imports.add("import fieldcrypt.sqlalchemy")
    args = [_render_inner(encrypted.type_, autogen_context), f"keyring={encrypted.keyring!r}"]
    for name, default in _REPR_DEFAULTS:
        value = getattr(encrypted, name)
        if name == "add_index_column":
            continue
        if value == default:
            continue
        if name == "normalizer":
            args.append(f"normalizer={_render_callable(value, imports)}")
        else:
            args.append(f"{name}={value!r}")
    if encrypted.searchable:
        args.append("add_index_column=False")
    return f"fieldcrypt.sqlalchemy.Encrypted({', '.join(args)})"


def _render_inner(inner: sat.TypeEngine[Any], autogen_context: Any) -> str:
    prefix = autogen_context.opts.get("sqlalchemy_module_prefix") or "sa."
    if (
        isinstance(inner, sat.Enum)
        and inner.enum_class is not None
        and issubclass(inner.enum_class, enum.Enum)
    ):
        # repr(Enum(Color)) lists the values and loses the class: values would come back as str.
        return f"{prefix}Enum({_render_callable(inner.enum_class, autogen_context.imports)})"
    module = type(inner).__module__
    if module.startswith("sqlalchemy.dialects."):
        dialect = module.split(".")[2]
        autogen_context.imports.add(f"from sqlalchemy.dialects import {dialect}")
        return f"{dialect}.{inner!r}"
    if module.startswith("sqlalchemy."):
        return f"{prefix}{inner!r}"
    autogen_context.imports.add(f"import {module}")
    return f"{module}.{inner!r}"


def _render_callable(obj: Any, imports: set[str]) -> str:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ConfigurationError(
            f"cannot render {obj!r} in a migration: use a module-level function or class "
            "(importable by name) for normalizers and enums of encrypted columns"
        )
    imports.add(f"import {module}")
    return f"{module}.{qualname}"
