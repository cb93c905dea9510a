"""fieldcrypt for Alembic: import this module in ``env.py`` to register the operations.

Operations (``op.<name>`` in revisions): ``create_key_store``, ``upgrade_key_store``, ``drop_key_store``,
``encrypt_column``, ``decrypt_column``, ``reencrypt_column``, ``rebind_column``, ``rewrap_keys``,
``rotate_blind_index`` (typed functions for ``mypy --strict`` revisions in
:mod:`fieldcrypt.alembic.op`). Autogenerate hooks: :func:`render_item` (renders ``Encrypted`` types
with their imports) and :data:`process_revision_directives` (turns a plaintext -> encrypted type
change into ``op.encrypt_column``, and a rename declared with ``bound_as`` into a rename plus
``op.rebind_column``). Importing this module also keeps every key-store table out of
autogenerate (:mod:`fieldcrypt.alembic.exclude`): a proposed drop would delete every data key.
See docs/rotation.md.
"""

from __future__ import annotations

from fieldcrypt.alembic import exclude as _exclude  # keeps the key store out of autogenerate
from fieldcrypt.alembic import implementations as _implementations  # registers the implementations
from fieldcrypt.alembic import renames as _renames  # autogenerate: renames of encrypted columns
from fieldcrypt.alembic.autogenerate import render_item
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
from fieldcrypt.alembic.rewriter import process_revision_directives

del _exclude, _implementations, _renames

__all__ = [
    "CreateKeyStoreOp",
    "DecryptColumnOp",
    "DropKeyStoreOp",
    "EncryptColumnOp",
    "RebindColumnOp",
    "ReencryptColumnOp",
    "RewrapKeysOp",
    "RotateBlindIndexOp",
    "UpgradeKeyStoreOp",
    "process_revision_directives",
    "render_item",
]
