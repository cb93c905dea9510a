"""Column-index records in a SQL key-store table, as rows of purpose ``column_index``.

The row's ``keyring`` is ``#index`` (no keyring can have that name, so ``SqlKeyStore.list`` never
returns it), ``wraps`` holds the record as JSON, and ``revision`` makes updates compare-and-set.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from fieldcrypt.keys.record import utcnow
from fieldcrypt.stores.base import KeyStoreConflict
from fieldcrypt.stores.indexes import PURPOSE, IndexRecord, record_id
from fieldcrypt.stores.sql import SqlKeyStore

OWNER = "#index"


class SqlIndexRecords:
    def __init__(self, store: SqlKeyStore) -> None:
        self.engine = store.engine
        self.table = store.table

    def get(self, table: str, column: str) -> IndexRecord | None:
        query = select(self.table.c.wraps, self.table.c.revision).where(
            self.table.c.key_id == record_id(table, column)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else IndexRecord.from_json(row.wraps, row.revision)

    def list(self, keyring: str) -> list[IndexRecord]:
        query = select(self.table.c.wraps, self.table.c.revision).where(self.table.c.purpose == PURPOSE)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = (IndexRecord.from_json(r.wraps, r.revision) for r in rows)
        return [r for r in found if r.keyring == keyring]

    def put(self, record: IndexRecord) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(self.table).values(**_row(record)))
        except IntegrityError as exc:
            raise KeyStoreConflict(f"{record.table}.{record.column} already has an index record") from exc

    def update(self, record: IndexRecord) -> IndexRecord:
        stored = record.evolve(revision=record.revision + 1)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(self.table)
                .where(self.table.c.key_id == record.record_id)
                .where(self.table.c.revision == record.revision)
                .values(wraps=stored.to_json(), revision=stored.revision)
            )
        if result.rowcount != 1:
            raise KeyStoreConflict(f"the index record of {record.table}.{record.column} changed")
        return stored


def _row(record: IndexRecord) -> dict[str, Any]:
    return {
        "key_id": record.record_id,
        "keyring": OWNER,
        "purpose": PURPOSE,
        "status": "active",
        "created_at": utcnow().replace(tzinfo=None),
        "wraps": record.to_json(),
        "revision": record.revision,
    }
