"""fieldcrypt's Alembic operations as typed functions, for revisions checked by ``mypy --strict``.

Alembic's ``op`` stub lists only Alembic's own operations, so ``op.encrypt_column(...)`` type-checks
as an unknown attribute. These functions run the same operations through ``op.invoke``, and take
exactly the parameters of each operation's ``__init__`` (derived from it, never restated)::

    from fieldcrypt.alembic import op as fc_op

    def upgrade() -> None:
        fc_op.encrypt_column("users", "ssn", type_=Encrypted(sa.String(11), keyring="pii"),
                             existing_type=sa.String(11))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec

from alembic import op
from alembic.operations import MigrateOperation

from fieldcrypt.alembic.ops import (
    CreateKeyStoreOp,
    DecryptColumnOp,
    DropKeyStoreOp,
    EncryptColumnOp,
    RebindColumnOp,
    ReencryptColumnOp,
    RewrapKeysOp,
    RotateBlindIndexOp,
    UpgradeKeyStoreOp,
)

__all__ = [
    "create_key_store",
    "decrypt_column",
    "drop_key_store",
    "encrypt_column",
    "rebind_column",
    "reencrypt_column",
    "rewrap_keys",
    "rotate_blind_index",
    "upgrade_key_store",
]

P = ParamSpec("P")


def _invoking(op_class: Callable[P, MigrateOperation], name: str) -> Callable[P, None]:
    """``op.<name>``: build ``op_class`` from the arguments and run it in the current migration."""

    def invoke(*args: P.args, **kwargs: P.kwargs) -> None:
        op.invoke(op_class(*args, **kwargs))

    invoke.__name__ = invoke.__qualname__ = name
    invoke.__doc__ = op_class.__doc__
    return invoke


encrypt_column = _invoking(EncryptColumnOp, "encrypt_column")
decrypt_column = _invoking(DecryptColumnOp, "decrypt_column")
reencrypt_column = _invoking(ReencryptColumnOp, "reencrypt_column")
rebind_column = _invoking(RebindColumnOp, "rebind_column")
rotate_blind_index = _invoking(RotateBlindIndexOp, "rotate_blind_index")
rewrap_keys = _invoking(RewrapKeysOp, "rewrap_keys")
create_key_store = _invoking(CreateKeyStoreOp, "create_key_store")
drop_key_store = _invoking(DropKeyStoreOp, "drop_key_store")
upgrade_key_store = _invoking(UpgradeKeyStoreOp, "upgrade_key_store")
