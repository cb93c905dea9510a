"""The keyring: encrypts and decrypts values for a place, under shared, rotating data keys.

A keyring has a name (columns refer to it), a master key that wraps its data keys, optional
extra master keys that may also unwrap them (during a move to a new master key), and a key store
shared by every process of the application. New values use the current data key: the
authenticated active key of highest generation (fieldcrypt.keys.trust); a new one is made when
that key is older than ``rotate_after`` or when this process has encrypted
``rotate_after_encryptions`` values with it (see docs/format.md, "Nonce safety").
"""

from __future__ import annotations

import itertools
import logging
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import NoReturn

from fieldcrypt import _aead, anchor, audit, metrics, tenant_ids
from fieldcrypt import format as fmt
from fieldcrypt.cache import CacheEntry, DataKeyCache
from fieldcrypt.datakeys import Slot
from fieldcrypt.errors import (
    ConfigurationError,
    DecryptionError,
    KeyAccessError,
    KeyDestroyedError,
    NotCiphertextError,
    UnsupportedFormatError,
)
from fieldcrypt.keys import trust
from fieldcrypt.keys.master import MasterKey, is_write_only
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, utcnow
from fieldcrypt.place import Place
from fieldcrypt.stores.base import KeyStore
from fieldcrypt.subjects import SubjectKeys

log = logging.getLogger("fieldcrypt")

BLIND_INDEX_LABEL = b"fieldcrypt/v1/blind-index"
_OVERHEAD, _VERSION_1, _HEADER = fmt.OVERHEAD, fmt.VERSION_1, fmt.HEADER_BYTES
_SEALED = _HEADER + _aead.NONCE_BYTES  # where the AES-GCM ciphertext and tag start
# While no new data key can be made, a process may go on past its per-key budget up to this many
# times the budget (still far below the nonce-safety bound of docs/format.md); then writes fail.
HARD_LIMIT_FACTOR = 2
ROTATION_RETRY_SECONDS = 5.0  # after a failed rotation, how long to wait before trying again


@dataclass(eq=False)
class _Current:
    """The data key this process encrypts with, until ``refresh_at`` (monotonic seconds)."""

    record: DataKeyRecord
    header: bytes
    entry: CacheEntry[_aead.Aead]
    refresh_at: float
    limit: int  # values before a refresh: the budget, or the hard limit while rotation fails
    encryptions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class Keyring(SubjectKeys):
    """Envelope encryption for one family of fields (for example ``"pii"``).

    Args:
        name: how columns and attributes refer to this keyring; ``family/tenant`` names a
            tenant's keyring (made by :class:`~fieldcrypt.tenants.TenantKeyrings`).
        master_key: wraps new data keys; also unwraps existing ones.
        key_store: where wrapped data keys live (shared by all processes).
        also_decrypt_with: further master keys allowed to unwrap (e.g. the old one mid-rewrap).
        rotate_after: age after which a new data key is made for new values.
        rotate_after_encryptions: values one process encrypts with one key before it makes a new
            one; bounds the random-nonce collision risk (docs/format.md).
        refresh_every: how often a process looks for a newer data key made by another process.
        cache: the data-key cache (bounds in :class:`~fieldcrypt.cache.DataKeyCache`).
        blind_index_bytes: length of the truncated HMAC kept for equality search (8 to 32).
        clock_skew: how far in the future a key's ``created_at`` may lie; a key dated later is
            reported and never chosen.
        anchor_id: the fingerprint of this keyring's anchor (``fieldcrypt keys list`` prints it).
            Pinned, a replaced anchor is refused even in a process that never saw the real one.
        subject_key_store: where subject keys live (fieldcrypt.subjects; default ``key_store``).
            On DynamoDB give them a table of their own: ``list`` scans the key-store table.
        subject_cache_entries: how many subjects' keys one process keeps unwrapped (an LRU, under
            ``cache``'s ``max_age`` and ``max_uses``).

    With a write-only master key (:class:`~fieldcrypt.keys.kms_rsa.RsaProducerKey`) the keyring
    is a *producer*: it encrypts only under data keys it made itself, held in this process's
    memory (never under a key found in the store, which it could not open and must not be
    steered onto), and refuses to decrypt or compute blind indexes (docs/threat-model.md).
    """

    def __init__(
        self,
        name: str,
        master_key: MasterKey,
        key_store: KeyStore,
        *,
        also_decrypt_with: Sequence[MasterKey] = (),
        rotate_after: timedelta = timedelta(days=30),
        rotate_after_encryptions: int = 2**24,
        refresh_every: timedelta = timedelta(minutes=1),
        cache: DataKeyCache | None = None,
        blind_index_bytes: int = 16,
        namespace: str | None = None,
        clock_skew: timedelta = timedelta(minutes=5),
        anchor_id: str | None = None,
        subject_key_store: KeyStore | None = None,
        subject_cache_entries: int = 10_000,
    ) -> None:
        # "pii/acme" is tenant acme's keyring of family pii (fieldcrypt.tenants).
        self.tenant: str | None = tenant_ids.split_name(name)[1]
        if not isinstance(master_key, MasterKey):
            raise ConfigurationError("master_key must be a MasterKey (LocalMasterKey, KmsMasterKey)")
        if not isinstance(key_store, KeyStore):
            raise ConfigurationError("key_store must be a KeyStore (SqlKeyStore, MemoryKeyStore...)")
        if rotate_after <= timedelta(0) or refresh_every <= timedelta(0):
            raise ConfigurationError("rotate_after and refresh_every must be positive")
        if not 1 <= rotate_after_encryptions <= 2**32:
            raise ConfigurationError("rotate_after_encryptions must be between 1 and 2**32")
        if not 8 <= blind_index_bytes <= 32:
            raise ConfigurationError("blind_index_bytes must be between 8 and 32")
        if namespace is not None and (
            not isinstance(namespace, str) or not namespace or "\x00" in namespace or len(namespace) > 255
        ):
            raise ConfigurationError(
                "namespace must be a non-empty string of at most 255 characters, without NUL"
            )
        if clock_skew < timedelta(0):
            raise ConfigurationError("clock_skew must not be negative")
        if subject_key_store is not None and not isinstance(subject_key_store, KeyStore):
            raise ConfigurationError("subject_key_store must be a KeyStore (SqlKeyStore, MemoryKeyStore...)")
        self.name = name
        self.master_key = master_key
        self.master_keys: tuple[MasterKey, ...] = (master_key, *also_decrypt_with)
        self.key_store = key_store
        self.rotate_after = rotate_after
        self.rotate_after_encryptions = rotate_after_encryptions
        self.refresh_every = refresh_every
        self.cache = cache if cache is not None else DataKeyCache()
        # Every cache slot names this keyring, so keyrings sharing a cache never read through
        # each other's keys (another master key or key store would refuse the unwrap).
        self._scope = self.cache.scope(name, tuple(m.key_id for m in self.master_keys), key_store)
        self.subject_key_store = key_store if subject_key_store is None else subject_key_store
        # Its own cache: subjects (10**6?) must not push the keyring's few data keys out.
        self.subject_cache = DataKeyCache(
            max_age=self.cache.max_age, max_uses=self.cache.max_uses, max_entries=subject_cache_entries
        )
        self._wrapping = None
        self.blind_index_bytes = blind_index_bytes
        self.clock_skew = clock_skew
        self._anchor = anchor.AnchorCheck(name, anchor_id)
        self.write_only = is_write_only(master_key)
        if self.write_only and also_decrypt_with:
            raise ConfigurationError(
                "a write-only producer keyring cannot also decrypt: drop also_decrypt_with"
            )
        self.namespace = namespace
        # Prefixed to every place's table name ("tenant-a" NUL "users"): database and DynamoDB
        # names never hold a NUL, so a namespaced place never equals a place of 0.1 or of
        # another namespace (docs/format.md, "Namespaces").
        self._namespace = None if namespace is None else namespace.encode("utf-8") + b"\x00"
        self._current: _Current | None = None
        self._current_lock = threading.Lock()
        self._blind_records: tuple[float, list[tuple[Slot, DataKeyRecord]], bool] | None = None
        self._exhausted: set[str] = set()  # keys this process used up: never returned to
        self._reported: set[tuple[str, str]] = set()  # refused keys already logged
        self._retry_rotation_at = 0.0  # after a failed rotation, when to try again (monotonic)
        self._index_prefixes: dict[bytes, bytes] = {}
        key_store.on_before_write_transaction(self._prepare_quietly)
        # Counted under the family name: a tenant id never reaches a metric attribute.
        metrics.count_values(self, tenant_ids.split_name(name)[0])  # free unless a provider records

    # -- values ---------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes | str, place: Place) -> bytes:
        """Encrypt one value for ``place`` under the current data key; returns format v1 bytes."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        where = place.encoded if self._namespace is None else self._namespaced(place)
        return self.encrypt_encoded(data, where)

    def encrypt_encoded(self, data: bytes, where: bytes) -> bytes:
        """:meth:`encrypt` for a place given as :meth:`associated_place` would encode it: for
        writers that keep a column's encoding and append each row's (fieldcrypt.dynamodb.prepared)
        rather than build a ``Place`` per value. The same key choice, budget and cache bounds.
        Not counted by metrics, which wrap ``encrypt``: such writers go through ``encrypt`` while
        ``"encrypt" in vars(keyring)``."""
        current = self._current
        if current is None or not current.entry.use():
            current = self._refresh_current()
        else:
            count = next(current.encryptions)
            if count > current.limit or time.monotonic() >= current.refresh_at:
                current = self._refresh_current((current, count))
        aead = current.entry.value
        while aead is None:  # its entry was evicted between the check and here: refresh
            current = self._refresh_current()
            aead = current.entry.value
        return current.header + aead.seal(data, current.header + where)

    def decrypt(self, blob: bytes, place: Place) -> bytes:
        """Decrypt a v1 value written for ``place``.

        Raises:
            DecryptionError: tampered, moved to another place, unknown or swapped key (opaque).
            UnsupportedFormatError: a format version this release does not know.
            KeyDestroyedError: its data key was destroyed.
            KeyAccessError: the master key could not be used (KMS access, throttling...).
        """
        # Runs once per value read: module constants, and AES-GCM called without a wrapper.
        if len(blob) < _OVERHEAD or blob[0] != _VERSION_1:
            self._refuse(blob, place)
        header = blob[:_HEADER]
        aead = self.cache.fresh((self._scope, header)) or self._data_key(header, place)
        try:
            where = place.encoded if self._namespace is None else self._namespaced(place)
            return aead.open_parts(blob[_HEADER:_SEALED], blob[_SEALED:], header + where)
        except _aead.TagMismatch:
            raise DecryptionError(**place.where()) from None

    def associated_place(self, place: Place) -> bytes:
        """The part of a value's associated data after its header: ``place.encoded``, namespaced."""
        return place.encoded if self._namespace is None else self._namespaced(place)

    def opening(
        self, header: bytes, column: Place, *, row_bound: bool = False
    ) -> tuple[CacheEntry[_aead.Aead], bytes] | None:
        """The cached data key a value with ``header`` opens under, and its associated data at
        ``column`` (row-less): whole, or for ``row_bound`` up to where the row's encoding goes.
        None when the key is not in the cache (``decrypt`` loads it). For readers that keep both
        per column (:mod:`fieldcrypt.reading`): they call ``use()`` on every value."""
        entry = self.cache.peek((self._scope, header))
        if entry is None:
            return None
        associated = header + self.associated_place(column)
        # A row-less place ends in 0x00, a row's in 0x01 and the row key (docs/format.md).
        return entry, associated[:-1] + b"\x01" if row_bound else associated

    def _namespaced(self, place: Place) -> bytes:
        """``place.encoded`` with the keyring's namespace and a NUL before the table name."""
        prefix = self._namespace
        assert prefix is not None
        encoded = place.encoded
        return struct.pack(">H", int.from_bytes(encoded[:2], "big") + len(prefix)) + prefix + encoded[2:]

    @staticmethod
    def _refuse(blob: bytes, place: Place) -> NoReturn:
        try:
            fmt.parse(blob)
        except fmt.UnknownVersion as exc:
            if exc.version >= fmt.FIRST_TEXT_BYTE or exc.version == 0:
                raise NotCiphertextError(**place.where()) from None
            raise UnsupportedFormatError(exc.version, **place.where()) from None
        except fmt.MalformedCiphertext:
            pass
        raise DecryptionError(**place.where())

    def decrypt_str(self, blob: bytes, place: Place) -> str:
        return self.decrypt(blob, place).decode("utf-8")

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        """The data key id a v1 value names (for status and re-encryption), without decrypting."""
        return fmt.parse(blob).key_id.hex()

    # -- blind index ------------------------------------------------------------------------

    def blind_index(self, value: bytes | str, place: Place) -> bytes:
        """The equality token to store beside a value: HMAC under the current blind-index key."""
        if self.write_only:
            # A producer holding the index key could test guessed values (an SSN has 10**9)
            # against the index, which is reading by another name: producers do not search.
            self._refuse_producer("compute blind indexes (searchable columns are written by readers)")
        keys, trusted = self._blind_index_keys()
        if not keys or not trusted:
            with self._current_lock:
                keys, trusted = self._blind_index_keys(force=True)
                if not keys or not trusted:
                    self._create_key(Purpose.BLIND_INDEX, accept=lambda record: True)
                    keys, trusted = self._blind_index_keys(force=True)
        return self._index_with(keys[-1], value, place)

    def blind_index_candidates(self, value: bytes | str, place: Place) -> list[bytes]:
        """Every token ``value`` may be stored under (one per usable blind-index key).

        Used by queries; never creates a key (reads must not write to the key store). Only
        authenticated keys: a query token under a planted key would hand its planter the searched
        value's HMAC under a key they know.
        """
        if self.write_only:
            self._refuse_producer("search")
        return [self._index_with(key, value, place) for key in self._blind_index_keys()[0]]

    def _blind_index_keys(self, *, force: bool = False) -> tuple[list[tuple[Slot, DataKeyRecord]], bool]:
        """Usable blind-index keys as (cache slot, record), current last, and whether they were
        authenticated (False only in a 0.1 key store, not yet upgraded); re-read every refresh."""
        cached = self._blind_records
        if force or cached is None or time.monotonic() >= cached[0]:
            records = self.key_store.list(self.name)
            indexing = [r for r in records if r.purpose is Purpose.BLIND_INDEX]
            # No index key yet: nothing to authenticate, so no anchor to open (no KMS call).
            key = self._mac_key(records) if indexing else None
            if not indexing:
                usable = []
            elif key is None:  # 0.1 store: every active key, as 0.1 did, for reads only
                usable = [
                    r for r in records if r.purpose is Purpose.BLIND_INDEX and r.status is Status.ACTIVE
                ]
            else:
                usable = self._choose(records, Purpose.BLIND_INDEX, key).usable
            keys = [(self._slot(r.purpose, r.key_id), r) for r in usable]
            trusted = key is not None or not indexing
            cached = (time.monotonic() + self.refresh_every.total_seconds(), keys, trusted)
            self._blind_records = cached
        return cached[1], cached[2]

    def index_preparation(
        self, column: Place
    ) -> tuple[object, float, CacheEntry[_aead.HmacKey], bytes] | None:
        """What a per-column indexer may keep between tokens (:mod:`fieldcrypt.indexing`): the
        index-key set as last read (a new object whenever it is re-read or dropped), when it is
        due to be re-read (monotonic), the current index key's cache entry and the column's HMAC
        prefix. None for a producer, before a trusted index key exists, or when the key is not
        cached: then ``blind_index`` decides."""
        cached = self._blind_records
        if self.write_only or cached is None or not cached[1] or not cached[2]:
            return None
        entry = self.cache.peek(cached[1][-1][0])
        if entry is None:
            return None
        prefix = BLIND_INDEX_LABEL + self.associated_place(Place(column.table, column.column))
        return cached, cached[0], entry, prefix

    def _index_with(self, key: tuple[Slot, DataKeyRecord], value: bytes | str, place: Place) -> bytes:
        # Encode before the key is loaded: a value that cannot be encoded then fails in a frame
        # holding no key (error trackers record the local variables of every frame).
        data = _utf8(value) if isinstance(value, str) else value
        slot, record = key
        hmac_key: _aead.HmacKey = self.cache.fresh(slot) or self.cache.get(
            slot, lambda: _aead.HmacKey(self._unwrap(record))
        )
        # Keyed by the place's encoding (a bytes object keeps its hash: integrations pass the same
        # row-less Place for a column every time) rather than by a tuple built per token.
        prefix = self._index_prefixes.get(place.encoded)
        if prefix is None:  # the column's place, without the row: tokens must match across rows
            if len(self._index_prefixes) >= 4096:
                self._index_prefixes.clear()
            column = Place(place.table, place.column)
            prefix = BLIND_INDEX_LABEL + self.associated_place(column)
            self._index_prefixes[place.encoded] = prefix
        return hmac_key.digest(prefix, data)[: self.blind_index_bytes]

    # -- data keys --------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Make sure a current data key exists and is unwrapped, so no request waits on KMS."""
        self._refresh_current()
        if self.write_only:
            return
        for key in self._blind_index_keys(force=True)[0]:
            self._index_with(key, b"", Place("-", "-"))

    def current_key_id(self) -> str:
        return self._refresh_current().record.key_id

    def records(self, purpose: Purpose | None = None) -> list[DataKeyRecord]:
        return self.key_store.list(self.name, purpose)

    def rotate(self, purpose: Purpose = Purpose.ENCRYPTION) -> DataKeyRecord:
        """Make a new data key now; new values use it (other processes within ``refresh_every``)."""
        with self._current_lock:
            record = self._create_key(purpose)
            self._current = None
            self._blind_records = None
        return record

    def adopt(self, records: Sequence[DataKeyRecord]) -> list[DataKeyRecord]:
        """Authenticate 0.1 records (no generation, no MAC) so they may be chosen again: the
        upgrade step of a 0.1 key store, a key administrator's act (they vouch for each key).

        Creates the anchor if there is none, checks that each key opens under this keyring's
        master keys and matches its id, and gives each a generation in ``created_at`` order.
        """
        with self._current_lock:
            records_now = self.key_store.list(self.name)
            key = self._writer_mac_key(records_now, adopting=True)
            self._check_master_key(records_now)
            adopted: list[DataKeyRecord] = []
            for purpose in (Purpose.ENCRYPTION, Purpose.BLIND_INDEX):
                next_generation = self._choose(records_now, purpose, key, report=False).next_generation
                for record in sorted(records, key=lambda r: (r.created_at, r.key_id)):
                    if record.purpose is not purpose or record.generation is not None:
                        continue
                    if record.status is not Status.DESTROYED:
                        self._unwrap(record)  # raises unless the key is genuine and opens here
                    signed = trust.sign(record.evolve(generation=next_generation), key)
                    adopted.append(self.key_store.update(signed))
                    audit.report("data_key.adopted", signed, generation=str(next_generation))
                    next_generation += 1
            self._current = None
            self._blind_records = None
        return adopted

    def refresh(self) -> None:
        """Forget which keys are current, so the next use reads the key store again.

        For key administration in this process (a key retired or destroyed here): other
        processes notice within ``refresh_every``.
        """
        with self._current_lock:
            self._current = None
            self._blind_records = None

    def forget(self, record: DataKeyRecord) -> None:
        """Drop this process's cached copy of ``record``'s data key (it was destroyed here)."""
        self.cache.evict(self._slot(record.purpose, record.key_id))

    def _new_key(self, purpose: Purpose) -> tuple[DataKeyRecord, bytes]:
        """Make a data key, wrap it, store the record; returns it with the plaintext key."""
        record, data_key = self._wrapped_new_key(purpose)
        self.key_store.put(record)
        audit.report("data_key.created", record, self.master_key.key_id)
        return record, data_key

    def _refresh_current(self, counted: tuple[_Current, int] | None = None) -> _Current:
        """Choose (or make) the current key. ``counted``: the caller already counted the value
        it is encrypting against that key (so it is not counted twice)."""
        with self._current_lock:
            current = self._current
            now = time.monotonic()
            if counted is not None and counted[0] is current:
                count = counted[1]
            else:
                count = next(current.encryptions) if current is not None else 0
                if (
                    current is not None
                    and count <= current.limit
                    and now < current.refresh_at
                    and current.entry.use()
                ):
                    return current  # another thread refreshed it while this one waited
            if current is not None and count > self.rotate_after_encryptions:
                self._exhausted.add(current.record.key_id)  # never returned to (nonce budget)
            entry: CacheEntry[_aead.Aead]
            exhausted = current is not None and count > self.rotate_after_encryptions
            if self.write_only:
                record, entry = self._own_key(current, exhausted)
                degraded = False
            else:
                record, degraded = self._choose_current(current, count)
                slot = self._slot(Purpose.ENCRYPTION, record.key_id)
                try:
                    entry = self.cache.entry(slot, lambda: self._unwrap_aead(record))
                except KeyAccessError as exc:
                    kept = None if exhausted else self._keep_through_outage(current, record, exc)
                    if kept is None:
                        raise
                    # KMS is tried again one refresh interval after this failure, not per value.
                    refresh_at = now + min(self.refresh_every, self.cache.max_age).total_seconds()
                    self._current = replace(kept, refresh_at=refresh_at + time.monotonic() - now)
                    return self._current
            wait = (
                self._retry_seconds()
                if degraded
                else min(self.refresh_every, self.cache.max_age).total_seconds()
            )
            limit = (
                HARD_LIMIT_FACTOR * self.rotate_after_encryptions
                if degraded
                else self.rotate_after_encryptions
            )
            header = fmt.header_for(bytes.fromhex(record.key_id))
            fresh = _Current(record, header, entry, now + wait, limit)
            if current is not None and current.record.key_id == record.key_id:
                fresh.encryptions = current.encryptions  # the count follows the key, not the refresh
            else:
                next(fresh.encryptions)  # the value being encrypted now is the key's first
            self._current = fresh
            return fresh

    def _retry_seconds(self) -> float:
        return min(self.refresh_every.total_seconds(), ROTATION_RETRY_SECONDS)

    def _choose_current(self, current: _Current | None, count: int) -> tuple[DataKeyRecord, bool]:
        """The key for new values, and whether it is a stopgap (a due rotation failed)."""
        records = self.key_store.list(self.name)
        choice = self._choose(records, Purpose.ENCRYPTION, self._writer_mac_key(records))
        best = choice.current
        if best is not None and self._fresh(best):
            return best, False
        error: Exception | None = None
        if time.monotonic() >= self._retry_rotation_at:
            try:
                return self._create_key(Purpose.ENCRYPTION, accept=self._fresh), False
            except ConfigurationError:
                raise  # a wrong setup is not an outage: say so on every write
            except Exception as exc:
                # Rotation is due but failed (KMS or the store down): keep a still-usable key a
                # little longer rather than failing the write; retry after a short pause.
                self._retry_rotation_at = time.monotonic() + self._retry_seconds()
                log.warning("fieldcrypt: could not rotate keyring %s (%s); retrying later", self.name, exc)
                error = exc
        if best is not None:
            return best, True  # too old, but within its budget
        exhausted = current.record.key_id if current is not None else None
        if exhausted is not None and choice.refused.get(exhausted) == trust.EXHAUSTED:
            if count <= HARD_LIMIT_FACTOR * self.rotate_after_encryptions:
                return current.record, True  # type: ignore[union-attr]
            raise KeyAccessError(
                f"keyring {self.name!r}: data key {exhausted} has encrypted {count - 1} values in this "
                f"process, past its budget ({self.rotate_after_encryptions}) and the hard limit "
                f"({HARD_LIMIT_FACTOR}x), and no new data key could be made: writes are refused until "
                "one can (check KMS and the key store)"
            ) from error
        if error is not None:
            raise error
        raise KeyAccessError(
            f"keyring {self.name!r}: no usable data key, and making one failed a moment ago; retry"
        )

    def _fresh(self, record: DataKeyRecord) -> bool:
        return utcnow() - record.created_at < self.rotate_after

    def _prepare_quietly(self) -> None:
        try:
            current = self._current
            if current is None or time.monotonic() >= current.refresh_at:
                self._refresh_current()
        except Exception as exc:  # the write path will raise the real error where it matters
            log.debug("fieldcrypt: keyring %s not prepared: %s", self.name, exc)

    def _keep_through_outage(
        self, current: _Current | None, new: DataKeyRecord, error: KeyAccessError
    ) -> _Current | None:
        """The key this process holds, if it may go on encrypting while KMS cannot unwrap ``new``.

        Another process rotated just before a KMS outage: failing every write although a valid
        key is in memory would turn the outage into downtime. The held key must still be within
        its cache bounds (age, uses) and its encryption budget (checked by the caller), and not
        destroyed or deleted from the key store since.
        """
        if current is None or current.record.key_id == new.key_id or not current.entry.use():
            return None
        stored = self.key_store.get(current.record.key_id)
        if stored is None or stored.status is Status.DESTROYED:
            return None
        log.warning(
            "fieldcrypt: keyring %s cannot unwrap its new data key %s (%s); still encrypting under "
            "%s until KMS answers",
            self.name,
            new.key_id,
            error.code or "KMS unavailable",
            current.record.key_id,
        )
        return current

    def _own_key(
        self, current: _Current | None, exhausted: bool
    ) -> tuple[DataKeyRecord, CacheEntry[_aead.Aead]]:
        """A producer's next key: its current one while fresh, else a new one it makes now.

        It never takes a key from the store: it could not unwrap one, and a key planted there by
        someone who knows it must not be used. Its own key is held only here, outside the shared
        cache but under its bounds: when ``max_age``/``max_uses`` run out, it makes another.
        """
        fresh = current is not None and utcnow() - current.record.created_at < self.rotate_after
        if current is not None and fresh and not exhausted and current.entry.use():
            return current.record, current.entry
        record, data_key = self._new_key(Purpose.ENCRYPTION)
        return record, self.cache.detached(_aead.Aead(data_key))

    def _data_key(self, header: bytes, place: Place) -> _aead.Aead:
        if self.write_only:
            # Off the hot path on purpose: a producer's own key never enters the shared cache
            # (Keyring._own_key), so every value it tries to read arrives here.
            self._refuse_producer("decrypt")

        def load() -> _aead.Aead:
            record = self.key_store.get(header[1:].hex())
            if record is None or record.keyring != self.name or record.purpose is not Purpose.ENCRYPTION:
                raise DecryptionError(**place.where())
            return self._unwrap_aead(record, place)

        # The slot of an encryption key is the value header itself (version byte + key id).
        try:
            return self.cache.get((self._scope, header), load)
        except DecryptionError as exc:
            where = place.where()
            if (exc.table, exc.column, exc.row) == (where["table"], where["column"], where["row"]):
                raise
            # A failure the cache remembered from another place: name this one.
            if isinstance(exc, KeyDestroyedError):
                raise KeyDestroyedError(exc.key_id, **where) from None
            raise DecryptionError(**where) from None

    def __repr__(self) -> str:
        return f"Keyring({self.name!r}, master_key={self.master_key!r}, key_store={self.key_store!r})"


def _utf8(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError("a value with a lone surrogate cannot be encoded as UTF-8") from None
