"""Autogenerate: renames of encrypted tables and columns become renames plus ``op.rebind_column``.

Autogenerate never detects a rename: it writes a drop and an add, which would delete every value.
When the model declares the column's old names (``Encrypted(..., bound_as=(old_table,
old_column))``) and autogenerate proposes dropping exactly that table or column, the pair becomes
``op.rename_table`` / ``op.alter_column(..., new_column_name=...)`` followed by
``op.rebind_column``. A drop beside an added encrypted column that declares no old names is left
as written, with a warning: it may be a rename whose values would be lost.

The generated downgrade is not rewritten (its types are the database's, not ``Encrypted``): edit
it by hand, or leave the revision irreversible.
"""

from __future__ import annotations

import warnings
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.operations import ops

from fieldcrypt.alembic.ops import RebindColumnOp
from fieldcrypt.alembic.rewriter import process_revision_directives
from fieldcrypt.errors import PossibleRenameWarning
from fieldcrypt.sqlalchemy.types import Encrypted


@process_revision_directives.rewrites(ops.UpgradeOps)
def _renames(context: Any, revision: Any, upgrade: ops.UpgradeOps) -> ops.UpgradeOps:
    dropped = {
        _qualified(op.table_name, op.schema): op for op in upgrade.ops if isinstance(op, ops.DropTableOp)
    }
    renamed = {
        id(op): done
        for op in upgrade.ops
        if isinstance(op, ops.CreateTableOp) and (done := _table_rename(op, dropped))
    }
    consumed = {id(op) for op in dropped.values() if getattr(op, "_renamed", False)}
    # What autogenerate proposed for the old table (dropping its indexes) now applies to the
    # renamed one, after the rename.
    moved = {
        id(op): op
        for op in upgrade.ops
        if isinstance(op, ops.ModifyTableOps)
        and any(r.table_name == op.table_name for r in _renames_in(renamed))
    }
    kept: list[Any] = []
    for op in upgrade.ops:
        if id(op) in consumed or id(op) in moved:
            continue
        if id(op) in renamed:
            kept.extend(renamed[id(op)])
            for rename in _renames_in({id(op): renamed[id(op)]}):
                kept.extend(
                    _retarget(m, rename.new_table_name)
                    for m in moved.values()
                    if m.table_name == rename.table_name
                )
            continue
        if isinstance(op, ops.ModifyTableOps):
            op.ops = _column_renames(op)
        kept.append(op)
    upgrade.ops = kept
    return upgrade


def _renames_in(renamed: dict[int, list[Any]]) -> list[ops.RenameTableOp]:
    return [op for done in renamed.values() for op in done if isinstance(op, ops.RenameTableOp)]


def _retarget(modify: ops.ModifyTableOps, table: str) -> ops.ModifyTableOps:
    modify.table_name = table
    for op in modify.ops:
        op.table_name = table  # type: ignore[attr-defined]
    return modify


def _qualified(table: str, schema: str | None) -> str:
    return f"{schema}.{table}" if schema else table


def _encrypted(column: Any) -> Encrypted[Any] | None:
    return column.type if isinstance(column.type, Encrypted) else None


def _table_rename(create: ops.CreateTableOp, dropped: dict[str, ops.DropTableOp]) -> list[Any] | None:
    columns = [c for c in create.columns if isinstance(c, sa.Column)]
    encrypted = {c.name: t for c in columns if (t := _encrypted(c)) is not None}
    olds = {t.bound_as[0] for t in encrypted.values() if t.bound_as is not None}
    new_name = _qualified(create.table_name, create.schema)
    if len(olds) != 1 or new_name in olds:
        if encrypted and dropped and not olds:
            _warn(f"table {new_name} is created with encrypted columns while {', '.join(dropped)} is dropped")
        return None
    (old_name,) = olds
    drop = dropped.get(old_name)
    if drop is None or getattr(drop, "_renamed", False):
        return None
    old_columns = {c.name: c for c in drop.to_table().columns}
    moves = {t.bound_as[1]: name for name, t in encrypted.items() if t.bound_as is not None}
    moves.update(_index_moves(encrypted, moves))
    new_columns = {c.name for c in columns}
    if {moves.get(name, name) for name in old_columns} != new_columns:
        _warn(f"{old_name} -> {new_name} looks like a rename, but their columns differ; write it by hand")
        return None
    drop._renamed = True  # type: ignore[attr-defined]  # consumed: the caller leaves the drop out
    result: list[Any] = [ops.RenameTableOp(drop.table_name, create.table_name, schema=create.schema)]
    for old, new in moves.items():
        if old != new:
            result.append(_rename_column(create.table_name, create.schema, old_columns[old], new))
    result.extend(
        RebindColumnOp(create.table_name, name, type_=t, schema=create.schema)
        for name, t in encrypted.items()
        if t.bound_as is not None
    )
    return result


def _column_renames(modify: ops.ModifyTableOps) -> list[Any]:
    table = _qualified(modify.table_name, modify.schema)
    drops = {op.column_name: op for op in modify.ops if isinstance(op, ops.DropColumnOp)}
    adds = {op.column.name: op for op in modify.ops if isinstance(op, ops.AddColumnOp)}
    encrypted = {name: t for name, op in adds.items() if (t := _encrypted(op.column)) is not None}
    moves = {
        t.bound_as[1]: name
        for name, t in encrypted.items()
        if t.bound_as is not None and t.bound_as[0] == table and t.bound_as[1] in drops
    }
    moves.update(
        {old: new for old, new in _index_moves(encrypted, moves).items() if old in drops and new in adds}
    )
    unexplained = [name for name, t in encrypted.items() if t.bound_as is None]
    if unexplained and set(drops) - set(moves):
        _warn(
            f"{table}: {', '.join(sorted(set(drops) - set(moves)))} dropped while encrypted "
            f"{', '.join(unexplained)} is added"
        )
    if not moves:
        return list(modify.ops)
    result: list[Any] = []
    for op in modify.ops:
        if isinstance(op, ops.DropColumnOp) and op.column_name in moves:
            continue
        if isinstance(op, ops.AddColumnOp) and op.column.name in moves.values():
            continue
        result.append(op)
    for old, new in moves.items():
        result.append(_rename_column(modify.table_name, modify.schema, drops[old].to_column(), new))
    result.extend(
        RebindColumnOp(modify.table_name, new, type_=encrypted[new], schema=modify.schema)
        for new in moves.values()
        if new in encrypted
    )
    return result


def _index_moves(encrypted: dict[str, Encrypted[Any]], moves: dict[str, str]) -> dict[str, str]:
    """Blind-index columns named after their column (``<column>_bidx``) move with it."""
    found: dict[str, str] = {}
    for old, new in moves.items():
        type_ = encrypted.get(new)
        if type_ is not None and type_.searchable and type_.index_column is None:
            found[f"{old}_bidx"] = f"{new}_bidx"
    return found


def _rename_column(table: str, schema: str | None, old: Any, new: str) -> ops.AlterColumnOp:
    # MySQL/MariaDB rename a column with CHANGE, which needs its type: the reflected one.
    return ops.AlterColumnOp(
        table,
        old.name,
        schema=schema,
        modify_name=new,
        existing_type=old.type,
        existing_nullable=old.nullable,
    )


@renderers.dispatch_for(ops.RenameTableOp)
def _render_rename_table(autogen_context: Any, op: ops.RenameTableOp) -> str:
    # Alembic's autogenerate never emits a rename itself, so it ships no renderer for one.
    schema = f", schema={op.schema!r}" if op.schema else ""
    return f"op.rename_table({op.table_name!r}, {op.new_table_name!r}{schema})"


def _warn(what: str) -> None:
    warnings.warn(
        f"fieldcrypt: {what}. If this is a rename, the drop deletes every value and the new column "
        "cannot read copied ciphertexts: declare Encrypted(..., bound_as=(old_table, old_column)) "
        "on the renamed column so autogenerate writes a rename and op.rebind_column "
        "(docs/rotation.md, 'Schema changes')",
        PossibleRenameWarning,
        stacklevel=2,
    )
