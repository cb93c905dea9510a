"""Data keys in a table of the application's own SQL database (SQLAlchemy Core).

Keeping the key store beside the data means it is replicated and backed up with it (an Aurora
global database carries it to every region), while the data keys inside stay wrapped by the
master key, which never leaves KMS.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
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
    inspect,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError, NoSuchTableError, OperationalError, ProgrammingError
from sqlalchemy.schema import CreateIndex

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status
from fieldcrypt.stores.base import DamagedRow, DamagedRows, KeyStoreConflict, RowReports, damaged_row

# Columns added in 0.2 (record authentication); a 0.1 table lacks them until it is upgraded.
TRUST_COLUMNS = ("generation", "mac")

DEFAULT_TABLE = "fieldcrypt_keys"
_OWN_CONNECTION = "fieldcrypt_key_store"
_IDS_PER_QUERY = 1000  # ids bound in one IN (...): well inside every dialect's parameter limit


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
        # Orders a keyring's keys of one purpose; unique, so two processes rotating at once cannot
        # both take the next generation (NULL, in 0.1 and producers' rows, is never a duplicate).
        Column("generation", BigInteger, nullable=True),
        Column("mac", String(64), nullable=True),  # hex of HMAC-SHA256 (docs/format.md)
        Index(f"ix_{name}_keyring_purpose", "keyring", "purpose"),
        Index(f"ux_{name}_generation", "keyring", "purpose", "generation", unique=True),
        schema=schema,
    )


def add_trust_columns(conn: Connection, table: Table) -> bool:
    """Bring a 0.1 key-store table to the 0.2 layout (two columns, one unique index), in place.

    Used by ``SqlKeyStore.upgrade_table`` and the ``upgrade_key_store`` Alembic operation.
    Returns False when the table already has them. Existing rows are kept as they are.
    """
    existing = {c["name"] for c in inspect(conn).get_columns(table.name, schema=table.schema)}
    missing = [name for name in TRUST_COLUMNS if name not in existing]
    if not missing:
        return False
    preparer = conn.dialect.identifier_preparer
    for name in missing:
        column = table.c[name]
        column_type = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.format_table(table)} ADD {preparer.format_column(column)} {column_type}"
        )
    (unique,) = [i for i in table.indexes if i.unique]
    conn.execute(CreateIndex(unique))
    return True


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
        self._reports = RowReports()
        self._upgraded: bool | None = None  # does the table have the 0.2 columns? (found once)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "begin", self._before_application_transaction)

    @property
    def engine(self) -> Engine:
        return self._engine

    def create_table(self) -> None:
        """Create the key-store table if it does not exist."""
        self.table.create(self._engine, checkfirst=True)

    @property
    def upgraded(self) -> bool:
        """Whether the table has the 0.2 layout (``generation`` and ``mac``); checked once."""
        if self._upgraded is None:
            try:
                with self._engine.connect() as conn:
                    names = {
                        c["name"]
                        for c in inspect(conn).get_columns(self.table.name, schema=self.table.schema)
                    }
            except NoSuchTableError:
                return True  # not created yet: it will be created in the current layout
            self._upgraded = set(TRUST_COLUMNS) <= names
        return self._upgraded

    def upgrade_table(self) -> bool:
        """Add the 0.2 columns to a 0.1 table (see docs/rotation.md, "Upgrading from 0.1")."""
        with self._engine.begin() as conn:
            changed = add_trust_columns(conn, self.table)
        self._upgraded = True
        return changed

    def _columns_read(self) -> list[Column[Any]]:
        skip = () if self.upgraded else TRUST_COLUMNS
        return [c for c in self.table.c if c.name not in skip]

    def get(self, key_id: str) -> DataKeyRecord | None:
        with self._table_required(), self._engine.connect() as conn:
            row = conn.execute(select(*self._columns_read()).where(self.table.c.key_id == key_id)).first()
        if row is None:
            return None
        record = _parse(row)
        return record if isinstance(record, DataKeyRecord) else None

    def list(self, keyring: str, purpose: Purpose | None = None) -> list[DataKeyRecord]:
        query = select(*self._columns_read()).where(self.table.c.keyring == keyring)
        if purpose is not None:
            query = query.where(self.table.c.purpose == purpose.value)
        with self._table_required(), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        parsed = [_parse(r) for r in rows]
        return self._reports.sort_out(keyring, parsed, every_purpose=purpose is None)

    def keyring_names(self, prefix: str = "") -> builtins.list[str]:
        """The names of the keyrings with records here that start with ``prefix``, sorted."""
        column = self.table.c.keyring
        query = select(column).distinct().where(column.startswith(prefix, autoescape=True))
        with self._table_required(), self._engine.connect() as conn:
            return sorted(str(name) for name in conn.execute(query).scalars())

    def damaged(self, keyring: str) -> DamagedRows:
        self.list(keyring)
        return self._reports.of(keyring)

    def get_many(self, key_ids: Sequence[str]) -> dict[str, DataKeyRecord]:
        """The records of ``key_ids`` that exist (one query per 1,000 ids); damaged rows are left out."""
        found: dict[str, DataKeyRecord] = {}
        with self._table_required(), self._engine.connect() as conn:
            for start in range(0, len(key_ids), _IDS_PER_QUERY):
                ids = key_ids[start : start + _IDS_PER_QUERY]
                query = select(*self._columns_read()).where(self.table.c.key_id.in_(ids))
                for row in conn.execute(query):
                    record = _parse(row)
                    if isinstance(record, DataKeyRecord):
                        found[record.key_id] = record
        return found

    def put(self, record: DataKeyRecord) -> None:
        self._insert([record])

    def put_many(self, records: Sequence[DataKeyRecord]) -> None:
        """Insert every record in one transaction (the driver's executemany) or, on a taken id or
        generation, none."""
        self._insert(records)

    def _insert(self, records: Sequence[DataKeyRecord]) -> None:
        if not self.upgraded:
            raise ConfigurationError(
                f"key-store table {self.table.name!r} is in the fieldcrypt 0.1 layout: new keys need "
                "`fieldcrypt keys upgrade` (or op.upgrade_key_store()) first; see docs/rotation.md"
            )
        if not records:
            return
        try:
            with self._table_required(), self._engine.begin() as conn:
                conn.execute(insert(self.table), [_columns(r) for r in records])
        except IntegrityError as exc:
            what = (
                f"data key {records[0].key_id} (or generation {records[0].generation} of its purpose)"
                if len(records) == 1
                else f"one of {len(records)} data keys (or a generation of its purpose)"
            )
            raise KeyStoreConflict(f"{what} already exists") from exc

    def update(self, record: DataKeyRecord) -> DataKeyRecord:
        stored = record.evolve(revision=record.revision + 1)
        values = _columns(stored)
        if not self.upgraded:
            values = {k: v for k, v in values.items() if k not in TRUST_COLUMNS}
        with self._table_required(), self._engine.begin() as conn:
            result = conn.execute(
                update(self.table)
                .where(self.table.c.key_id == record.key_id)
                .where(self.table.c.revision == record.revision)
                .values(**values)
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
        "generation": record.generation,
        "mac": None if record.mac is None else record.mac.hex(),
    }


def _parse(row: Row[Any]) -> DataKeyRecord | DamagedRow:
    """The row as a record, or what is wrong with it (one edited row must not stop a keyring)."""
    try:
        return _record(row)
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        return damaged_row(str(row.key_id), str(row.keyring), exc)


def _record(row: Row[Any]) -> DataKeyRecord:
    created: datetime = row.created_at
    stored = json.loads(row.wraps)
    if not isinstance(stored, dict):
        raise TypeError("wraps is not a JSON object")
    wraps = {str(k): base64.b64decode(v, validate=True) for k, v in stored.items()}
    mapping = row._mapping
    generation = mapping.get("generation")
    mac = mapping.get("mac")
    return DataKeyRecord(
        key_id=row.key_id,
        keyring=row.keyring,
        purpose=Purpose(row.purpose),
        status=Status(row.status),
        created_at=created.replace(tzinfo=UTC),
        wraps=wraps,
        revision=row.revision,
        generation=None if generation is None else int(generation),
        mac=None if mac is None else bytes.fromhex(mac),
    )
