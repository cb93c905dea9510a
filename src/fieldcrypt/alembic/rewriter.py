"""Autogenerate support: turn "plaintext column -> Encrypted column" into ``op.encrypt_column``.

Left alone, autogenerate writes a raw type change (VARCHAR -> BYTEA), which fails on PostgreSQL
and would encrypt nothing anyway. In ``env.py``::

    from fieldcrypt.alembic import process_revision_directives, render_item
    context.configure(..., render_item=render_item,
                      process_revision_directives=process_revision_directives)
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import renderers, rewriter
from alembic.operations import ops

from fieldcrypt.alembic._compat import render_type
from fieldcrypt.alembic.autogenerate import render_encrypted
from fieldcrypt.alembic.ops import DecryptColumnOp, EncryptColumnOp, RebindColumnOp, _ColumnOp
from fieldcrypt.sqlalchemy.types import Encrypted

process_revision_directives = rewriter.Rewriter()


def _encrypted(type_: Any) -> Encrypted[Any] | None:
    return type_ if isinstance(type_, Encrypted) else None


@process_revision_directives.rewrites(ops.AlterColumnOp)
def _alter_to_encrypt(context: Any, revision: Any, op: ops.AlterColumnOp) -> Any:
    new = _encrypted(op.modify_type)
    old = op.existing_type
    if new is None or _encrypted(old) is not None:
        return op
    encrypt = EncryptColumnOp(op.table_name, op.column_name, type_=new, existing_type=old, schema=op.schema)
    # Any other change in the same alter (nullability, comment) stays a plain alter_column.
    if op.modify_nullable is None and op.modify_comment is False and op.modify_server_default is False:
        return encrypt
    op.modify_type = None
    return [encrypt, op]


def _render_column_op(name: str, autogen_context: Any, op: _ColumnOp) -> str:
    # The type object itself, rendered with its imports: never a restatement of its options.
    args = [
        repr(op.table_name),
        repr(op.column_name),
        f"type_={render_encrypted(op.type_, autogen_context)}",
    ]
    if op.existing_type is not None:
        args.append(f"existing_type={render_type(op.existing_type, autogen_context)}")
    if op.schema is not None:
        args.append(f"schema={op.schema!r}")
    return f"op.{name}({', '.join(args)})"


@renderers.dispatch_for(EncryptColumnOp)
def _render_encrypt(autogen_context: Any, op: EncryptColumnOp) -> str:
    return _render_column_op("encrypt_column", autogen_context, op)


@renderers.dispatch_for(DecryptColumnOp)
def _render_decrypt(autogen_context: Any, op: DecryptColumnOp) -> str:
    return _render_column_op("decrypt_column", autogen_context, op)


@renderers.dispatch_for(RebindColumnOp)
def _render_rebind(autogen_context: Any, op: RebindColumnOp) -> str:
    return _render_column_op("rebind_column", autogen_context, op)
