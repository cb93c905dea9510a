"""Keep the key-store table out of autogenerate, automatically.

The key store is not in the application's ``target_metadata``, so Alembic's autogenerate sees a
table in the database that the models lack and proposes ``op.drop_table("fieldcrypt_keys")``.
Applying that revision would delete every data key: an accidental crypto-shred of the whole
database. Importing :mod:`fieldcrypt.alembic` (which ``env.py`` does to register the operations)
adds a schema comparator, Alembic's documented hook for third-party autogenerate behaviour, that
runs after Alembic's own and removes any proposed drop of a key-store table. A table counts as a
key store when its name is the default (``fieldcrypt_keys``), the table of a registered keyring's
:class:`~fieldcrypt.stores.sql.SqlKeyStore`, or when it has the key-store columns (so a table
renamed with ``SqlKeyStore(engine, table=...)`` is recognised without configuration).
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import comparators
from alembic.operations import ops
from alembic.util import DispatchPriority, PriorityDispatchResult

from fieldcrypt import registry
from fieldcrypt.stores.sql import DEFAULT_TABLE

# The columns every key-store table has had since 0.1 (later releases add columns).
_SHAPE = frozenset({"key_id", "keyring", "purpose", "status", "created_at", "wraps", "revision"})


def key_store_tables() -> set[str]:
    """Names of key-store tables known by configuration: the default and registered keyrings'."""
    names = {DEFAULT_TABLE}
    for keyring in registry.registered().values():
        table = getattr(keyring.key_store, "table", None)
        name = getattr(table, "name", None)
        if isinstance(name, str):
            names.add(name)
    return names


def is_key_store(op: ops.DropTableOp, known: set[str]) -> bool:
    """Whether a proposed table drop would delete a key store (by name or by its columns)."""
    if op.table_name in known:
        return True
    table = op.to_table()
    return {column.name for column in table.columns} >= _SHAPE


@comparators.dispatch_for("schema", priority=DispatchPriority.LAST)
def _keep_key_store(autogen_context: Any, upgrade_ops: ops.UpgradeOps, schemas: Any) -> Any:
    known = key_store_tables()
    dropped = {
        (op.schema, op.table_name)
        for op in upgrade_ops.ops
        if isinstance(op, ops.DropTableOp) and is_key_store(op, known)
    }
    # The drop comes with drops of the table's indexes, as a ModifyTableOps of the same table.
    upgrade_ops.ops[:] = [
        op
        for op in upgrade_ops.ops
        if not (
            isinstance(op, (ops.DropTableOp, ops.ModifyTableOps)) and (op.schema, op.table_name) in dropped
        )
    ]
    return PriorityDispatchResult.CONTINUE
