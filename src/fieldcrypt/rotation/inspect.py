"""Status (metadata only: which data key each value names) and verify (decrypt every value).

``status`` reads key ids from the v1 headers and the key store, so it makes no KMS call and
reads no plaintext; ``verify`` decrypts everything and lists the rows that fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from fieldcrypt.errors import DecryptionError, KeyAccessError
from fieldcrypt.failures import MAX_FAILURES_LISTED, note_failure
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.record import Purpose
from fieldcrypt.place import Place
from fieldcrypt.reports import ColumnStatus, Report
from fieldcrypt.rotation.engine import _transaction
from fieldcrypt.rotation.spec import ColumnSpec
from fieldcrypt.rotation.table import WHOLE, Segment, Target
from fieldcrypt.tenant_rows import TenantRows

__all__ = ["ColumnStatus", "Verification", "check_can_encrypt", "check_storage", "status", "verify"]

Progress = Callable[[int, int | None], None]  # (rows read so far, rows in the segment)


def status(
    bind: sa.Engine | sa.Connection,
    spec: ColumnSpec,
    *,
    batch_size: int = 5000,
    segment: Segment = WHOLE,
    progress: Progress | None = None,
    tenant: TenantRows | None = None,
) -> ColumnStatus:
    """Counts per data key and master key, plaintext and NULL values, and undecryptable ones
    (of one segment; merge segments' results with :meth:`ColumnStatus.merge`); with ``tenant``,
    of that tenant's rows only, against its keyring (``spec``'s)."""
    keyring = spec.resolve_keyring()
    records = {r.key_id: r for r in keyring.records(Purpose.ENCRYPTION)}
    target = f"{spec.table}.{spec.column}"
    result = ColumnStatus(spec.table, spec.column, target, current_key=keyring.chosen_key_id())
    result.damaged_key_rows = damaged_rows(keyring)
    for row, blob in _ciphertexts(bind, spec, batch_size, result, segment, progress, tenant):
        key_id = keyring.key_id_of(blob)
        result.count(key_id, records.get(key_id), repr(row))
    result.note_unused(list(records.values()))
    return result


@dataclass
class Verification(Report):
    table: str
    column: str
    rows: int = 0
    decrypted: int = 0
    null: int = 0
    plaintext: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    plaintext_rows: list[str] = field(default_factory=list)

    DERIVED = (("ok", "ok"),)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.plaintext == 0


def verify(
    bind: sa.Engine | sa.Connection,
    spec: ColumnSpec,
    *,
    batch_size: int = 1000,
    progress: Progress | None = None,
    tenant: TenantRows | None = None,
) -> Verification:
    """Decrypt every value (and decode it with the codec); list the rows that fail. With
    ``tenant``, that tenant's rows only, under its keyring (``spec``'s).

    Raises:
        KeyAccessError: a master key could not be used at all (that is not a per-row failure).
    """
    keyring = spec.resolve_keyring()
    codec = spec.the_codec  # before the first row: a spec without the column's type is refused
    result = Verification(spec.table, spec.column)
    for row, blob in _ciphertexts(bind, spec, batch_size, result, Segment(), progress, tenant):
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
    for _, stored in _values(bind, spec, batch_size, Segment(), None):
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
    bind: sa.Engine | sa.Connection,
    spec: ColumnSpec,
    batch_size: int,
    tally: _Tally,
    segment: Segment,
    progress: Progress | None,
    tenant: TenantRows | None = None,
) -> Iterator[tuple[Any, bytes]]:
    """(row key, v1 bytes) of every ciphertext in the column; rows, NULLs and plaintext values
    are counted on ``tally`` as they pass."""
    for row, stored in _values(bind, spec, batch_size, segment, progress, tenant):
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


def _values(
    bind: sa.Engine | sa.Connection,
    spec: ColumnSpec,
    batch_size: int,
    segment: Segment,
    progress: Progress | None,
    tenant: TenantRows | None = None,
) -> Iterator[tuple[Any, Any]]:
    after = None
    with _transaction(bind) as conn:
        target = Target.reflect(conn, spec.table, spec.column, tenant=tenant)
        total = target.count(conn, segment) if progress is not None else None
    read = 0
    while True:
        with _transaction(bind) as conn:
            rows = conn.execute(target.page(after, batch_size, segment)).all()
        if not rows:
            return
        width = len(target.pk)
        for row in rows:
            yield target.row_key(tuple(row[:width])), row[width]
        after = list(rows[-1][:width])
        read += len(rows)
        if progress is not None:
            progress(read, total)


def damaged_rows(keyring: Keyring) -> list[dict[str, str]]:
    """The keyring's key-store rows that cannot be read (skipped by the keyring), for reports."""
    return [{"key_id": d.key_id, "reason": d.reason} for d in keyring.key_store.damaged(keyring.name)]
