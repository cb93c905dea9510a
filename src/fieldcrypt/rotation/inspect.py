"""Status (metadata only: which data key each value names) and verify (decrypt every value).

``status`` reads key ids from the v1 headers and the key store, so it makes no KMS call and
reads no plaintext; ``verify`` decrypts everything and lists the rows that fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from fieldcrypt.errors import DecryptionError, KeyAccessError
from fieldcrypt.keys.record import Purpose, Status
from fieldcrypt.keys.resolve import newest_active
from fieldcrypt.place import Place
from fieldcrypt.rotation.engine import _transaction
from fieldcrypt.rotation.failures import MAX_FAILURES_LISTED, note_failure, report_dict
from fieldcrypt.rotation.spec import ColumnSpec
from fieldcrypt.rotation.table import Segment, Target


@dataclass
class ColumnStatus:
    table: str
    column: str
    rows: int = 0
    null: int = 0
    plaintext: int = 0
    by_data_key: Counter[str] = field(default_factory=Counter)
    by_master_key: Counter[str] = field(default_factory=Counter)
    current_key: str | None = None
    destroyed: int = 0
    unknown_key: int = 0
    plaintext_rows: list[str] = field(default_factory=list)
    unknown_key_rows: list[str] = field(default_factory=list)

    @property
    def encrypted(self) -> int:
        return sum(self.by_data_key.values())

    @property
    def not_current(self) -> int:
        return (
            self.encrypted
            - self.by_data_key.get(self.current_key or "", 0)
            - self.destroyed
            - self.unknown_key
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "rows": self.rows,
            "null": self.null,
            "plaintext": self.plaintext,
            "encrypted": self.encrypted,
            "current_data_key": self.current_key,
            "not_on_current_key": self.not_current,
            "by_data_key": dict(self.by_data_key),
            "by_master_key": dict(self.by_master_key),
            "undecryptable": {"destroyed_key": self.destroyed, "unknown_key": self.unknown_key},
            "plaintext_rows": self.plaintext_rows,
            "unknown_key_rows": self.unknown_key_rows,
        }


def status(bind: sa.Engine | sa.Connection, spec: ColumnSpec, *, batch_size: int = 5000) -> ColumnStatus:
    """Counts per data key and master key, plaintext and NULL values, and undecryptable ones."""
    keyring = spec.resolve_keyring()
    records = {r.key_id: r for r in keyring.records(Purpose.ENCRYPTION)}
    result = ColumnStatus(spec.table, spec.column, current_key=newest_active(records.values()))
    for row, blob in _ciphertexts(bind, spec, batch_size, result):
        key_id = keyring.key_id_of(blob)
        result.by_data_key[key_id] += 1
        record = records.get(key_id)
        if record is None:
            # Not trusted for its look: plaintext that begins with byte 0x01, or another
            # keyring's value. Listed by row, so it can be found (verify says which).
            result.unknown_key += 1
            _list_row(result.unknown_key_rows, row)
        elif record.status is Status.DESTROYED or not record.wraps:
            result.destroyed += 1
        else:
            for master_key_id in record.wraps:
                result.by_master_key[master_key_id] += 1
    return result


@dataclass
class Verification:
    table: str
    column: str
    rows: int = 0
    decrypted: int = 0
    null: int = 0
    plaintext: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    plaintext_rows: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.plaintext == 0

    def as_dict(self) -> dict[str, Any]:
        return report_dict(self, ok=self.ok)


def verify(bind: sa.Engine | sa.Connection, spec: ColumnSpec, *, batch_size: int = 1000) -> Verification:
    """Decrypt every value (and decode it with the codec); list the rows that fail.

    Raises:
        KeyAccessError: a master key could not be used at all (that is not a per-row failure).
    """
    keyring = spec.resolve_keyring()
    codec = spec.the_codec  # before the first row: a spec without the column's type is refused
    result = Verification(spec.table, spec.column)
    for row, blob in _ciphertexts(bind, spec, batch_size, result):
        try:
            place = spec.place(row)
            codec.decode(keyring.decrypt(blob, place), place)
            result.decrypted += 1
        except KeyAccessError:
            raise
        except (DecryptionError, ValueError, TypeError, ArithmeticError) as exc:
            result.failed += 1
            note_failure(result.failures, row, exc)
    return result


def check_can_encrypt(spec: ColumnSpec) -> str:
    """Prove that the column's keyring can encrypt, before ``encrypt_column`` changes anything.

    Widening a column is a schema change that stays when a later step fails (MySQL and MariaDB
    commit DDL at once): a run that then cannot encrypt leaves plaintext in a widened column. So
    first: the key store is reachable (and its table exists), a current data key is available
    (found and unwrapped, or made and wrapped: the master key works for what encrypting needs)
    and, for a searchable column, a blind-index key. Returns the current data key's id.

    Raises:
        ConfigurationError: no key-store table (the message says how to create it).
        KeyAccessError: the master key was refused or KMS could not be reached.
        KeyStoreUnavailable: the key store could not be read or written.
    """
    keyring = spec.resolve_keyring()
    key_id = keyring.current_key_id()
    if spec.index_column:
        keyring.blind_index(b"", Place(spec.table, spec.column))
    return key_id


def check_storage(bind: sa.Engine | sa.Connection, spec: ColumnSpec, *, batch_size: int = 5000) -> None:
    """Read every value once and refuse a column holding ciphertexts in the other storage form.

    Run before ``encrypt_column`` widens a column: widening would turn base64 ciphertexts into
    bytes that no longer look like text, after which nothing could tell them from plaintext.

    Raises:
        StorageMismatchError: a value is a ciphertext stored as text where ``spec`` says binary,
            or the other way round.
    """
    for _, stored in _values(bind, spec, batch_size):
        if stored is not None:
            spec.as_blob(stored)


class _Tally(Protocol):
    rows: int
    null: int
    plaintext: int
    plaintext_rows: list[str]


def _list_row(rows: list[str], row: Any) -> None:
    if len(rows) < MAX_FAILURES_LISTED:
        rows.append(repr(row))


def _ciphertexts(
    bind: sa.Engine | sa.Connection, spec: ColumnSpec, batch_size: int, tally: _Tally
) -> Iterator[tuple[Any, bytes]]:
    """(row key, v1 bytes) of every ciphertext in the column; rows, NULLs and plaintext values
    are counted on ``tally`` as they pass."""
    for row, stored in _values(bind, spec, batch_size):
        tally.rows += 1
        if stored is None:
            tally.null += 1
            continue
        blob = spec.as_blob(stored)
        if blob is None:
            # Listed by row: while a column is read with transitional=True, a row already
            # encrypted can be written back as plaintext; once encrypt_column has finished, every
            # row listed here went back.
            tally.plaintext += 1
            _list_row(tally.plaintext_rows, row)
            continue
        yield row, blob


def _values(bind: sa.Engine | sa.Connection, spec: ColumnSpec, batch_size: int) -> Iterator[tuple[Any, Any]]:
    after = None
    with _transaction(bind) as conn:
        target = Target.reflect(conn, spec.table, spec.column)
    while True:
        with _transaction(bind) as conn:
            rows = conn.execute(target.page(after, batch_size, Segment())).all()
        if not rows:
            return
        width = len(target.pk)
        for row in rows:
            yield target.row_key(tuple(row[:width])), row[width]
        after = list(rows[-1][:width])
