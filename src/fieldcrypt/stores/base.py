"""The key-store contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from fieldcrypt.errors import KeyStoreConflict
from fieldcrypt.keys.record import DataKeyRecord, Purpose

__all__ = ["KeyStore", "KeyStoreConflict"]


@runtime_checkable
class KeyStore(Protocol):
    """Holds data-key records: metadata and wrapped copies, never a plaintext key.

    Contract: ``put`` inserts and never overwrites (an existing id raises
    :class:`KeyStoreConflict`, which matters for DynamoDB global tables, where two regions may
    create keys at once); ``update`` replaces a record only if its stored ``revision`` is still
    the one the caller read, and stores ``revision + 1``. Reads (``get``, ``list``) never write,
    so a read-only replica (an Aurora secondary region) can serve them.

    Raises:
        KeyStoreConflict: on a taken id or a stale revision.
    """

    def get(self, key_id: str) -> DataKeyRecord | None: ...

    def list(self, keyring: str, purpose: Purpose | None = None) -> list[DataKeyRecord]: ...

    def put(self, record: DataKeyRecord) -> None: ...

    def update(self, record: DataKeyRecord) -> DataKeyRecord: ...

    def on_before_write_transaction(self, prepare: Callable[[], None]) -> None:
        """Ask the store to call ``prepare`` before the application opens a write transaction.

        Only stores that share a single-writer database with the application (SQLite) need it:
        there, creating a data key while the application holds the write lock would wait on
        itself. Other stores ignore it.
        """
        ...
