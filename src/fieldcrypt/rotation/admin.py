"""Keyring administration shared by the Alembic operations and the CLI: list, rotate, rewrap,
retire and destroy data keys. Only key-store rows change; no row of application data is touched.

Rewrap (moving to another master key) adds a wrapped copy of every data key under the new master
key and, optionally, removes the copies under the old one:
- KMS -> KMS in the same region: ``ReEncrypt``, so the plaintext data key never leaves KMS;
- local -> KMS, or KMS -> a key in another region or account: unwrap here, wrap under the new key
  (the data key is in this process's memory for the moment between the two calls).
Its cost is two KMS calls (or one ReEncrypt) per data key, whatever the size of the tables.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from fieldcrypt import audit, index_records
from fieldcrypt import format as fmt
from fieldcrypt.errors import ConfigurationError, KeyAccessError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.master import MasterKey, UnwrapFailed
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, kms_context
from fieldcrypt.ratelimit import LimitedMasterKey
from fieldcrypt.reports import ColumnStatus, Report
from fieldcrypt.stores.base import KeyStoreConflict


@dataclass
class RewrapReport(Report):
    """What a rewrap did (or, in a dry run, would do: the KMS calls are predicted, not made)."""

    keyring: str
    destination: str
    rewrapped: int = 0
    already: int = 0
    skipped_destroyed: int = 0
    removed_copies: int = 0
    reencrypt_calls: int = 0
    unwrap_wrap_calls: int = 0
    key_ids: list[str] = field(default_factory=list)


def list_keys(keyring: Keyring, purpose: Purpose | None = None) -> list[DataKeyRecord]:
    """Every data key of ``keyring`` (oldest first), with status and the master keys wrapping it.
    The anchor is not a data key: ``Keyring.anchor_fingerprint`` names it."""
    return [r for r in keyring.records(purpose) if r.purpose is not Purpose.ANCHOR]


def rewrap(
    keyring: Keyring,
    destination: MasterKey,
    *,
    remove_old: bool = False,
    dry_run: bool = False,
    before_call: Callable[[], None] | None = None,
    skip: Collection[str] = (),
) -> RewrapReport:
    """Wrap every live data key of ``keyring`` under ``destination`` too (idempotent).

    The source is whichever of the keyring's master keys can open each record's copies.
    ``remove_old`` then drops every other copy, so the old master key can be disabled or
    scheduled for deletion. ``before_call`` runs before each KMS call (the CLI's rate limiter).
    Data keys whose ids are in ``skip`` are left alone (one about to be shredded).

    Raises:
        KeyAccessError: no configured master key can open a data key, or KMS refused.
        ConfigurationError: the key store changed under us three times in a row.
    """
    report = RewrapReport(keyring.name, destination.key_id)
    for record in keyring.records():
        if record.status is Status.DESTROYED or not record.wraps:
            report.skipped_destroyed += 1
            continue
        if record.key_id in skip:
            continue
        for _attempt in range(3):
            try:
                _rewrap_one(keyring, record, destination, remove_old, dry_run, before_call, report)
                break
            except KeyStoreConflict:
                fresh = keyring.key_store.get(record.key_id)  # another rewrap or a status change won
                if fresh is None:
                    break
                record = fresh
        else:
            raise ConfigurationError(
                f"data key {record.key_id} kept changing during the rewrap; run it again"
            )
    return report


def _rewrap_one(
    keyring: Keyring,
    record: DataKeyRecord,
    destination: MasterKey,
    remove_old: bool,
    dry_run: bool,
    before_call: Callable[[], None] | None,
    report: RewrapReport,
) -> None:
    wraps = dict(record.wraps)
    counted = record.purpose is not Purpose.ANCHOR  # rewrapped with the data keys, not counted as one
    if destination.key_id in wraps:
        report.already += counted
    else:
        report.rewrapped += counted
        if counted:
            report.key_ids.append(record.key_id)
        if dry_run:
            _predict_calls(keyring, record, destination, report)
        else:
            wraps[destination.key_id] = _copy_under(keyring, record, destination, before_call, report)
    if remove_old:
        old = [k for k in wraps if k != destination.key_id]
        report.removed_copies += len(old) if counted else 0
        for key in old:
            del wraps[key]
    if not dry_run and wraps != dict(record.wraps):
        keyring.key_store.update(record.evolve(wraps=wraps))
        audit.report("data_key.rewrapped", record, destination.key_id, removed_old=str(remove_old))


def _predict_calls(
    keyring: Keyring, record: DataKeyRecord, destination: MasterKey, report: RewrapReport
) -> None:
    """Count the calls a real run would make for ``record``: a ReEncrypt when one KMS key of the
    keyring shares the destination's region, else an unwrap and a wrap. No call is made."""
    if _kms_reencrypt_source(keyring, record, destination) is not None:
        report.reencrypt_calls += 1
    else:
        report.unwrap_wrap_calls += 1


def _copy_under(
    keyring: Keyring,
    record: DataKeyRecord,
    destination: MasterKey,
    before_call: Callable[[], None] | None,
    report: RewrapReport,
) -> bytes:
    from_kms = _kms_reencrypt_source(keyring, record, destination)
    context = kms_context(record.keyring, record.key_id, record.purpose)
    if from_kms is not None:
        source, wrapped = from_kms
        if before_call:
            before_call()
        report.reencrypt_calls += 1
        return source.reencrypt_to(wrapped, context, destination)  # type: ignore[no-any-return]
    for master_key in keyring.master_keys:
        for recorded_id, wrapped in record.wraps.items():
            if not master_key.can_unwrap(recorded_id):
                continue
            if before_call:
                before_call()
            try:
                data_key = master_key.unwrap(wrapped, context)
            except UnwrapFailed:
                continue
            # Key commitment, as on every read: never rewrap a key that is not the one its id names
            # (the anchor's id is its place, not a commitment: the keyring checks its fingerprint).
            if record.purpose is not Purpose.ANCHOR and fmt.key_id_for(data_key).hex() != record.key_id:
                continue
            if before_call:
                before_call()
            report.unwrap_wrap_calls += 1
            return destination.wrap(data_key, context)
    raise KeyAccessError(
        f"no configured master key of keyring {keyring.name!r} can open data key {record.key_id} "
        f"(wrapped under {sorted(record.wraps)}); configure the current master key as the source"
    )


def _kms_reencrypt_source(keyring: Keyring, record: DataKeyRecord, destination: MasterKey) -> Any:
    """(source KMS key, its copy) when ``ReEncrypt`` can do the move inside KMS, else None.

    KMS re-encrypts only within one region (across accounts if the key policy allows it).
    """
    try:
        from fieldcrypt.keys.kms import KmsMasterKey
    except ImportError:  # boto3 absent: no KMS key can be configured anyway
        return None
    if not isinstance(destination, KmsMasterKey):
        return None
    for master_key in keyring.master_keys:
        # A rate-limited keyring's master keys wrap the real ones: ReEncrypt needs the KMS key.
        inner = master_key.inner if isinstance(master_key, LimitedMasterKey) else master_key
        if isinstance(inner, KmsMasterKey) and inner.region == destination.region:
            for recorded_id, wrapped in record.wraps.items():
                if inner.can_unwrap(recorded_id):
                    return inner, wrapped
    return None


def upgrade(keyring: Keyring) -> list[DataKeyRecord]:
    """Upgrade a fieldcrypt 0.1 key store for ``keyring`` (idempotent): add the 0.2 columns to a
    SQL table (the keyring index to a DynamoDB one), create the keyring's anchor, and authenticate each 0.1 key (checked to open under
    the keyring's master key first), so new values may be written again.

    Authenticating is vouching: every 0.1 key present becomes one the keyring may choose. Check
    ``fieldcrypt keys list`` first and retire any key nobody recognises.
    """
    _upgrade_table(keyring.key_store)
    legacy = [r for r in keyring.records() if r.purpose is not Purpose.ANCHOR and r.generation is None]
    return keyring.adopt(legacy)


def _upgrade_table(store: object) -> None:
    # A DynamoDB store exists only if its module (which imports boto3) was imported: look there.
    dynamodb = sys.modules.get("fieldcrypt.stores.dynamodb")
    if dynamodb is not None and isinstance(store, dynamodb.DynamoDBKeyStore):
        store.upgrade_table()  # the keyring index, so a refresh reads one keyring's records
        return
    try:
        from fieldcrypt.stores.sql import SqlKeyStore
    except ImportError:  # SQLAlchemy absent: the store is not a SQL one
        return
    if isinstance(store, SqlKeyStore):
        store.upgrade_table()


def retire(keyring: Keyring, key_id: str) -> DataKeyRecord:
    """Stop using a data key for new values; values under it still decrypt.

    A blind-index key is also no longer searched with, so it is refused while a column's tokens
    may still be under it (its index record says so: it was not reindexed since).

    Raises:
        ConfigurationError: no such key, already destroyed, or an index key still in use.
    """
    record = keyring.key_store.get(key_id)
    if record is not None and record.purpose is Purpose.BLIND_INDEX and record.keyring == keyring.name:
        users = index_records.still_using(keyring, key_id)
        if users:
            raise ConfigurationError(
                f"blind-index key {key_id} is still used by {', '.join(users)}: retiring it would make "
                "searches miss their rows; run `fieldcrypt reindex` on each of them first"
            )
    return _set_status(keyring, key_id, Status.RETIRED)


def retire_unused_index_keys(keyring: Keyring) -> tuple[list[str], dict[str, list[str]]]:
    """Retire every active blind-index key but the newest that no column uses any more.

    Returns (retired key ids, {kept key id: the columns still using it}).
    """
    active = [r for r in keyring.records(Purpose.BLIND_INDEX) if r.status is Status.ACTIVE]
    retired: list[str] = []
    kept: dict[str, list[str]] = {}
    for record in active[:-1]:
        users = index_records.still_using(keyring, record.key_id)
        if users:
            kept[record.key_id] = users
        else:
            retire(keyring, record.key_id)
            retired.append(record.key_id)
    return retired, kept


def destroy(keyring: Keyring, key_id: str) -> DataKeyRecord:
    """Crypto-shredding: erase every wrapped copy of a data key. Irreversible.

    Every value under it then raises :class:`~fieldcrypt.errors.KeyDestroyedError`; this
    process's cached copy is evicted at once (other processes drop theirs within the cache's
    ``max_age``).
    """
    record = _set_status(keyring, key_id, Status.DESTROYED, wipe=True)
    keyring.forget(record)
    return record


def _set_status(keyring: Keyring, key_id: str, status: Status, *, wipe: bool = False) -> DataKeyRecord:
    record = keyring.key_store.get(key_id)
    if record is None or record.keyring != keyring.name:
        raise ConfigurationError(
            f"keyring {keyring.name!r} has no data key {key_id!r} (see `fieldcrypt keys list`)"
        )
    if record.status is Status.DESTROYED:
        raise ConfigurationError(f"data key {key_id} is already destroyed")
    if record.purpose is Purpose.ANCHOR:
        raise ConfigurationError(
            f"{key_id} is keyring {keyring.name!r}'s anchor, not a data key: it authenticates every "
            "data key, so it is never retired or destroyed (retire or destroy the data keys instead)"
        )
    changed = record.evolve(status=status, wraps={} if wipe else record.wraps)
    stored = keyring.key_store.update(changed)
    audit.report(f"data_key.{status.value}", stored)
    keyring.refresh()
    return stored


def retire_unused(keyring: Keyring, statuses: list[ColumnStatus]) -> list[DataKeyRecord]:
    """Retire every active encryption key, other than the current one, that holds no value in
    any of the columns ``statuses`` describe (all the columns of the keyring, as the caller knows
    them). Retired keys still decrypt; only new values stop using them.

    Raises:
        ConfigurationError: no column given (a key unused in one column may serve another).
    """
    if not statuses:
        raise ConfigurationError(
            "name every column that uses the keyring: a data key with no value in one column "
            "may still hold values in another"
        )
    records = keyring.records(Purpose.ENCRYPTION)
    current = keyring.chosen_key_id()  # the keyring's authenticated choice, never a new key
    used = {key_id for s in statuses for key_id, n in s.by_data_key.items() if n}
    unused = [
        r for r in records if r.status is Status.ACTIVE and r.key_id != current and r.key_id not in used
    ]
    return [retire(keyring, r.key_id) for r in unused]
