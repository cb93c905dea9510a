"""Column-index records: how each searchable column's blind-index tokens are made, and since when.

A token is an HMAC over the column's place and its normalised value, truncated to the keyring's
``blind_index_bytes``. Two applications that disagree on the keyring, the truncation or the
normaliser compute different tokens for the same value, and their searches silently match
nothing. A rotation leaves old rows under the old index key until they are reindexed, so that key
must stay active until every column has moved. Both facts live in one record per column, kept
beside the data keys (the same SQL table or DynamoDB table, so it replicates and is backed up with
them) under a key id that no data key can take (``ix:`` + SHA-256 of the column), so the key
store's own reads never see it. The format is in docs/format.md ("Column-index records").
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import weakref
from dataclasses import dataclass, replace
from typing import Any, Protocol

from fieldcrypt.stores.base import KeyStore, insert_new, replace_revision

PURPOSE = "column_index"  # the record kind, in the key store's purpose field
PREFIX = "ix:"


@dataclass(frozen=True)
class IndexRecord:
    """One searchable column: the options its tokens are made with, and the oldest index key.

    ``oldest_key`` is the id of the oldest blind-index key a token of this column may be under
    ("" when the column was recorded before its keyring had one); it moves forward when a
    reindex of the whole column completes.
    """

    table: str
    column: str
    keyring: str
    token_bytes: int
    normalizer: str  # "module.qualname" of the normaliser, "" for none
    oldest_key: str
    revision: int = 0

    @property
    def options(self) -> tuple[str, int, str]:
        return (self.keyring, self.token_bytes, self.normalizer)

    @property
    def record_id(self) -> str:
        return record_id(self.table, self.column)

    def evolve(self, **changes: Any) -> IndexRecord:
        return replace(self, **changes)

    def to_json(self) -> str:
        fields = {
            "table": self.table,
            "column": self.column,
            "keyring": self.keyring,
            "token_bytes": self.token_bytes,
            "normalizer": self.normalizer,
            "oldest_key": self.oldest_key,
        }
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, revision: int) -> IndexRecord:
        fields = json.loads(text)
        return cls(**fields, revision=revision)


def record_id(table: str, column: str) -> str:
    """The key-store id of a column's record: 64 characters, never a hex data-key id."""
    digest = hashlib.sha256(f"{table}\x00{column}".encode()).hexdigest()
    return PREFIX + digest[: 64 - len(PREFIX)]


class IndexRecords(Protocol):
    """Where a key store keeps column-index records. Reads never write (read-only replicas)."""

    def get(self, table: str, column: str) -> IndexRecord | None: ...

    def list(self, keyring: str) -> list[IndexRecord]: ...

    def put(self, record: IndexRecord) -> None:
        """Insert; an existing record raises :class:`KeyStoreConflict`."""
        ...

    def update(self, record: IndexRecord) -> IndexRecord:
        """Replace if the stored revision is still ``record.revision``; else KeyStoreConflict."""
        ...


class MemoryIndexRecords:
    """Records held by this process (MemoryKeyStore, and key stores of other kinds)."""

    def __init__(self) -> None:
        self._records: dict[str, IndexRecord] = {}
        self._lock = threading.Lock()

    def get(self, table: str, column: str) -> IndexRecord | None:
        return self._records.get(record_id(table, column))

    def list(self, keyring: str) -> list[IndexRecord]:
        return [r for r in self._records.values() if r.keyring == keyring]

    def put(self, record: IndexRecord) -> None:
        with self._lock:
            taken = f"{record.table}.{record.column} already has an index record"
            insert_new(self._records, record.record_id, record, taken)

    def update(self, record: IndexRecord) -> IndexRecord:
        with self._lock:
            changed = f"the index record of {record.table}.{record.column} changed"
            return replace_revision(self._records, record.record_id, record, changed)


_records: weakref.WeakKeyDictionary[KeyStore, IndexRecords] = weakref.WeakKeyDictionary()
_records_lock = threading.Lock()


def records_of(store: KeyStore) -> IndexRecords:
    """The column-index records kept in ``store`` (one object per store)."""
    with _records_lock:
        found = _records.get(store)
        if found is None:
            found = _records[store] = _make(store)
        return found


def _make(store: KeyStore) -> IndexRecords:
    # The SQL and DynamoDB stores import their host library: a store of that kind exists only if
    # its module was imported, so look there rather than importing it here.
    sql = sys.modules.get("fieldcrypt.stores.sql")
    if sql is not None and isinstance(store, sql.SqlKeyStore):
        from fieldcrypt.stores.indexes_sql import SqlIndexRecords

        return SqlIndexRecords(store)
    dynamodb = sys.modules.get("fieldcrypt.stores.dynamodb")
    if dynamodb is not None and isinstance(store, dynamodb.DynamoDBKeyStore):
        from fieldcrypt.stores.indexes_dynamodb import DynamoDBIndexRecords

        return DynamoDBIndexRecords(store)
    return MemoryIndexRecords()
