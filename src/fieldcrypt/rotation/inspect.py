"""Status (metadata only: which data key each value names) and verify (decrypt every value).

``status`` reads key ids from the v1 headers and the key store, so it makes no KMS call and
reads no plaintext; ``verify`` decrypts everything and lists the rows that fail.

A per-subject column (``Encrypted(..., subject=...)``) is read with each row's subject: ``status``
looks up that subject's key-store record (one point read per subject, no subject key unwrapped), and
``verify`` opens the value with the subject's key as the application does. A shredded subject's
value is counted apart (``shredded_subject``), by row, never by subject id: it was erased on
purpose, so it is neither work left nor tampering. A value moved into another subject's row does
not open with that row's subject's key and is listed as failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from fieldcrypt.errors import ConfigurationError, DecryptionError, KeyAccessError, KeyDestroyedError
from fieldcrypt.failures import MAX_FAILURES_LISTED, note_failure
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status
from fieldcrypt.place import Place
from fieldcrypt.reports import ColumnStatus, Report
from fieldcrypt.rotation.engine import _transaction
from fieldcrypt.rotation.rowkeys import Chosen, RowKeys, one_tenant
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
    of that tenant's rows only, against its keyring (``spec``'s). A per-subject column's values
    under their subjects' keys are counted as ``subject_keyed`` or ``shredded_subject``.

    Raises:
        ConfigurationError: a per-tenant column without ``tenant`` (counts are per keyring).
    """
    keys = _one_keyring(spec, "status")
    keyring = keys.keyring()
    records = {r.key_id: r for r in keyring.records(Purpose.ENCRYPTION)}
    target = f"{spec.table}.{spec.column}"
    current = None if keys.per_subject else keyring.chosen_key_id()
    result = ColumnStatus(spec.table, spec.column, target, current_key=current, per_subject=keys.per_subject)
    result.damaged_key_rows = damaged_rows(keyring)
    subjects = _SubjectRecords(keyring)
    for row, blob, chosen in _ciphertexts(bind, spec, batch_size, result, segment, progress, tenant, keys):
        key_id = keyring.key_id_of(blob)
        if keys.per_subject and key_id not in records:
            record = subjects.get(chosen.subject)
            if record is None:  # no key for this row's subject: the value names no key it may use
                result.count(key_id, None, repr(row))
            else:
                result.count_subject(record.status is Status.DESTROYED or not record.wraps, repr(row))
            continue
        result.count(key_id, records.get(key_id), repr(row))
    result.note_unused(list(records.values()))
    return result


def _one_keyring(spec: ColumnSpec, what: str) -> RowKeys:
    keys = RowKeys(spec)
    if keys.per_tenant:
        raise ConfigurationError(
            f"{what} of {spec.table}.{spec.column}: its values are under each row's tenant's keyring; "
            "count one tenant at a time (tenant=TenantRows(...), or --tenant ID)"
        )
    return keys


class _SubjectRecords:
    """Subjects' key-store records by subject, each read once per run (a bounded memo)."""

    HELD = 10_000

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.held: dict[str, DataKeyRecord | None] = {}

    def get(self, subject: object) -> DataKeyRecord | None:
        if subject is None:
            return None
        try:
            tag = self.keyring.subject_tag(subject)  # type: ignore[arg-type]  # checked there
        except (ConfigurationError, DecryptionError):
            return None  # not a subject id, or the keyring never made a subject key
        if tag not in self.held:
            if len(self.held) >= self.HELD:
                self.held.clear()
            self.held[tag] = self.keyring.subject_key_store.get(tag)
        return self.held[tag]


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
    shredded_subject: int = 0  # values of shredded subjects: erased on purpose, not failures
    shredded_rows: list[str] = field(default_factory=list)

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
    keys = RowKeys(spec)
    codec = spec.the_codec  # before the first row: a spec without the column's type is refused
    result = Verification(spec.table, spec.column)
    rows = _ciphertexts(bind, spec, batch_size, result, Segment(), progress, tenant, keys)
    for row, blob, chosen in rows:
        try:
            place = spec.place(row)
            if keys.per_subject and keys.is_shared(blob, chosen):
                raise ConfigurationError(  # intact, but the application opens it with the subject's key
                    f"{spec.table}.{spec.column}: a value under a data key shared by every subject, "
                    "not its subject's own key (written before the column was per subject); "
                    "`fieldcrypt reencrypt` moves it"
                )
            codec.decode(keys.open(blob, (place,), chosen), place)
            result.decrypted += 1
        except KeyAccessError:
            raise
        except KeyDestroyedError as exc:
            if not keys.per_subject:
                result.failed += 1
                note_failure(result.failures, row, exc)
                continue
            result.shredded_subject += 1  # erased on purpose: not a failure
            _list_row(result.shredded_rows, row)
        except (DecryptionError, ConfigurationError, ValueError, TypeError, ArithmeticError) as exc:
            result.failed += 1
            note_failure(result.failures, row, exc)
    return result


def check_can_encrypt(spec: ColumnSpec, bind: sa.Engine | sa.Connection | None = None) -> str:
    """Prove that the column's keyring can encrypt, before ``encrypt_column`` changes anything.

    Widening a column is a schema change that stays when a later step fails (MySQL and MariaDB
    commit DDL at once): a run that then cannot encrypt leaves plaintext in a widened column. So
    first: the key store is reachable (and its table exists), a current data key is available
    (found and unwrapped, or made and wrapped: the master key works for what encrypting needs)
    and, for a searchable column, a blind-index key. Returns the current data key's id. A
    per-tenant column is checked for every tenant ``bind``'s table holds; a per-subject column
    makes no shared data key (each subject's key is made with its first value).

    Raises:
        ConfigurationError: no key-store table (the message says how to create it).
        KeyAccessError: the master key was refused or KMS could not be reached.
        KeyStoreUnavailable: the key store could not be read or written.
    """
    if spec.tenant_column is not None:
        if bind is None:
            raise ConfigurationError(f"{spec.table}.{spec.column} is per tenant: check it with its table")
        return ",".join(check_can_encrypt(s) for s in _each_tenant(bind, spec))
    keyring = spec.resolve_keyring()
    if spec.subject_column is not None:
        keyring.chosen_key_id()  # the key store and the anchor answer; subject keys come per row
        return ""
    key_id = keyring.current_key_id()
    if spec.index_column:
        keyring.blind_index(b"", Place(spec.table, spec.column))
    return key_id


def _each_tenant(bind: sa.Engine | sa.Connection, spec: ColumnSpec) -> list[ColumnSpec]:
    """``spec`` under the keyring of each tenant found in its table."""
    assert spec.tenant_column is not None
    with _transaction(bind) as conn:
        target = Target.reflect(conn, spec.table, spec.column, choosers=(spec.tenant_column, None))
        column = target.choosers[0]
        assert column is not None
        tenants = conn.execute(sa.select(column).distinct().where(column.is_not(None))).scalars().all()
    return [one_tenant(spec, spec.resolve_keyring(t))[0] for t in tenants]


def check_storage(bind: sa.Engine | sa.Connection, spec: ColumnSpec, *, batch_size: int = 5000) -> None:
    """Read every value once and refuse a column holding ciphertexts in the other storage form.

    Run before ``encrypt_column`` widens a column: widening would turn base64 ciphertexts into
    bytes that no longer look like text, after which nothing could tell them from plaintext.

    Raises:
        StorageMismatchError: a value is a ciphertext stored as text where ``spec`` says binary,
            or the other way round.
    """
    for _, stored, _chosen in _values(bind, spec, batch_size, Segment(), None):
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
    keys: RowKeys | None = None,
) -> Iterator[tuple[Any, bytes, Chosen]]:
    """(row key, v1 bytes, tenant and subject) of every ciphertext in the column; rows, NULLs and
    plaintext values are counted on ``tally`` as they pass."""
    for row, stored, chosen in _values(bind, spec, batch_size, segment, progress, tenant, keys):
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
        yield row, blob, chosen


def _values(
    bind: sa.Engine | sa.Connection,
    spec: ColumnSpec,
    batch_size: int,
    segment: Segment,
    progress: Progress | None,
    tenant: TenantRows | None = None,
    keys: RowKeys | None = None,
) -> Iterator[tuple[Any, Any, Chosen]]:
    after = None
    choosers = (None, None) if keys is None else keys.columns
    with _transaction(bind) as conn:
        target = Target.reflect(conn, spec.table, spec.column, tenant=tenant, choosers=choosers)
        total = target.count(conn, segment) if progress is not None else None
    read = 0
    while True:
        with _transaction(bind) as conn:
            rows = conn.execute(target.page(after, batch_size, segment)).all()
        if not rows:
            return
        width = len(target.pk)
        for row in rows:
            pk, stored, _index, chosen = target.split(row)
            yield target.row_key(pk), stored, chosen
        after = list(rows[-1][:width])
        read += len(rows)
        if progress is not None:
            progress(read, total)


def damaged_rows(keyring: Keyring) -> list[dict[str, str]]:
    """The keyring's key-store rows that cannot be read (skipped by the keyring), for reports."""
    return [{"key_id": d.key_id, "reason": d.reason} for d in keyring.key_store.damaged(keyring.name)]
