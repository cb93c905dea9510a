"""Data keys in a table of the application's own SQL database (SQLAlchemy Core).

Keeping the key store beside the data means it is replicated and backed up with it (an Aurora
global database carries it to every region), while the data keys inside stay wrapped by the
master key, which never leaves KMS.
"""

from __future__ import annotations

import base64
import json
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    insert,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status
from fieldcrypt.stores.base import KeyStoreConflict

DEFAULT_TABLE = "fieldcrypt_keys"
_OWN_CONNECTION = "fieldcrypt_key_store"


def key_store_table(metadata: MetaData, name: str = DEFAULT_TABLE, schema: str | None = None) -> Table:
    """The key-store table definition (also used by the ``create_key_store`` Alembic operation)."""
    return Table(
        name,
        metadata,
        Column("key_id", String(64), primary_key=True),
        Column("keyring", String(128), nullable=False),
        Column("purpose", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        # Naive UTC: the one representation SQLite, PostgreSQL and MySQL all keep unchanged.
        # Microseconds on MySQL/MariaDB too (DATETIME defaults to whole seconds there): the
        # newest key is chosen by creation time, and a rotation often lands in the same second.
        Column(
            "created_at", DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False
        ),
        # JSON object {master key id: base64 wrapped key}; real KMS blobs are ~170 bytes each.
        Column("wraps", Text, nullable=False),
        Column("revision", Integer, nullable=False, default=0),
        Index(f"ix_{name}_keyring_purpose", "keyring", "purpose"),
        schema=schema,
    )


class SqlKeyStore:
    """A :class:`~fieldcrypt.stores.KeyStore` in one table (default ``fieldcrypt_keys``).

    Works on SQLite, PostgreSQL and MySQL/MariaDB. Create the table once with
    :meth:`create_table` (or the ``create_key_store`` Alembic operation). Each call uses its own
    short transaction on a pooled connection, never the caller's.
    """

    def __init__(self, engine: Engine, *, table: str = DEFAULT_TABLE, schema: str | None = None):
        self._engine = engine.execution_options(**{_OWN_CONNECTION: True})
        self.table = key_store_table(MetaData(), table, schema)
        # Weak references: a keyring that goes away must not be kept alive (or called) by its store.
        self._preparers: list[weakref.WeakMethod[Callable[[], None]]] = []
        self._preparing = threading.local()
        if engine.dialect.name == "sqlite":
            event.listen(engine, "begin", self._before_application_transaction)

    @property
    def engine(self) -> Engine:
        return self._engine

    def create_table(self) -> None:
        """Create the key-store table if it does not exist."""
        self.table.create(self._engine, checkfirst=True)

    def get(self, key_id: str) -> DataKeyRecord | None:
        with self._table_required(), self._engine.connect() as conn:
            row = conn.execute(select(self.table).where(self.table.c.key_id == key_id)).first()
        return None if row is None else _record(row)

    def list(self, keyring: str, purpose: Purpose | None = None) -> list[DataKeyRecord]:
        query = select(self.table).where(self.table.c.keyring == keyring)
        if purpose is not None:
            query = query.where(self.table.c.purpose == purpose.value)
        with self._table_required(), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return sorted((_record(r) for r in rows), key=lambda r: (r.created_at, r.key_id))

    def put(self, record: DataKeyRecord) -> None:
        try:
            with self._table_required(), self._engine.begin() as conn:
                conn.execute(insert(self.table).values(**_columns(record)))
        except IntegrityError as exc:
            raise KeyStoreConflict(f"data key {record.key_id} already exists") from exc

    def update(self, record: DataKeyRecord) -> DataKeyRecord:
        stored = record.evolve(revision=record.revision + 1)
        with self._table_required(), self._engine.begin() as conn:
            result = conn.execute(
                update(self.table)
                .where(self.table.c.key_id == record.key_id)
                .where(self.table.c.revision == record.revision)
                .values(**_columns(stored))
            )
        if result.rowcount != 1:
            raise KeyStoreConflict(f"data key {record.key_id} changed since it was read")
        return stored

    @contextmanager
    def _table_required(self) -> Iterator[None]:
        """Turn the database's own "no such table" (each dialect words it differently) into a
        ConfigurationError saying how to create the key store; other errors pass unchanged."""
        try:
            yield
        except (OperationalError, ProgrammingError) as exc:
            try:
                with self._engine.connect() as conn:
                    missing = not sa_inspect(conn).has_table(self.table.name, schema=self.table.schema)
            except Exception:  # the database itself is unreachable: its error says more
                missing = False
            if not missing:
                raise
            url = self._engine.url.render_as_string(hide_password=True)
            raise ConfigurationError(
                f"key-store table {self.table.fullname!r} does not exist in {url}: create it with "
                f"SqlKeyStore(engine).create_table(), op.create_key_store() in an Alembic revision, "
                f"or `fieldcrypt init`"
            ) from exc

    def on_before_write_transaction(self, prepare: Callable[[], None]) -> None:
        self._preparers.append(weakref.WeakMethod(prepare))

    def _before_application_transaction(self, conn: Connection) -> None:
        # SQLite has one writer per file. If the application's transaction already holds the
        # write lock when a keyring first needs a data key, our insert on another connection
        # would wait for a lock held by the very thread that waits: create keys first instead.
        if conn.get_execution_options().get(_OWN_CONNECTION) or getattr(self._preparing, "on", False):
            return
        self._preparing.on = True
        try:
            self._preparers = [ref for ref in self._preparers if ref() is not None]
            for ref in self._preparers:
                prepare = ref()
                if prepare is not None:
                    prepare()
        finally:
            self._preparing.on = False

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        return f"SqlKeyStore({url!r}, table={self.table.name!r})"


def _columns(record: DataKeyRecord) -> dict[str, Any]:
    wraps = {k: base64.b64encode(v).decode("ascii") for k, v in record.wraps.items()}
    return {
        "key_id": record.key_id,
        "keyring": record.keyring,
        "purpose": record.purpose.value,
        "status": record.status.value,
        "created_at": record.created_at.astimezone(UTC).replace(tzinfo=None),
        "wraps": json.dumps(wraps, sort_keys=True),
        "revision": record.revision,
    }


def _record(row: Row[Any]) -> DataKeyRecord:
    created: datetime = row.created_at
    wraps = {k: base64.b64decode(v) for k, v in json.loads(row.wraps).items()}
    return DataKeyRecord(
        key_id=row.key_id,
        keyring=row.keyring,
        purpose=Purpose(row.purpose),
        status=Status(row.status),
        created_at=created.replace(tzinfo=UTC),
        wraps=wraps,
        revision=row.revision,
    )
