"""Data keys scoped to one subject (a user, a customer) inside a keyring, so one subject can be erased.

A keyring's ordinary data keys are shared by every value written in their period, so destroying
one erases everyone. A *subject key* is a random 256-bit key used only for the values of one
subject (the row's ``user_id``, say). It is kept as one key-store record:

- ``key_id``: the subject's *tag*, HMAC-SHA256 of the canonical subject id under a key derived from
  the keyring's anchor, truncated to 20 bytes. The subject id itself (an email?) is never stored.
- ``keyring``: ``<keyring>#subjects``, which no keyring can be named (``#`` is refused), so
  listing a keyring's own records never reads its subjects' rows (10**6 of them, maybe).
- ``purpose``: ``subject``; ``wraps``: ``{"subject_wrap:<id>": AES-256-GCM of the subject key}``
  under the keyring's *subject-wrapping key* (purpose ``subject_wrap``), with the record's
  identity as associated data.

The subject-wrapping key is an ordinary record of the keyring: KMS-wrapped, authenticated under
the anchor, chosen by generation. So making or opening a subject key costs no KMS call once the
wrapping key is cached (one unwrap per process and cache ``max_age``, whatever the number of
subjects), and only a ``kms:Decrypt`` holder can make a wrap that opens: the AES-GCM wrap
authenticates a subject record as the anchor's MAC does the others (a record planted or copied to
another subject's tag does not open, ``test_a_subject_record_copied_to_another_tag_does_not_open``).

Values keep format v1: the header names the subject key by its committing id. A reader knows the
row's subject, finds the record by its tag (one point read), and checks that the header names that
key, so a value of subject A in subject B's row fails. Shredding a subject erases its record's
wrapped copy and leaves it as a tombstone: the subject id can never get a key again (a later write
raises :class:`~fieldcrypt.errors.KeyDestroyedError` instead of quietly starting over).
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, NoReturn, Protocol

from fieldcrypt import _aead, audit
from fieldcrypt import format as fmt
from fieldcrypt.cache import DataKeyCache
from fieldcrypt.datakeys import DataKeys
from fieldcrypt.errors import ConfigurationError, DecryptionError, KeyDestroyedError, KeyStoreConflict
from fieldcrypt.keys import trust
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, utcnow
from fieldcrypt.place import Place
from fieldcrypt.stores.base import KeyStore

if TYPE_CHECKING:
    from fieldcrypt.subject_batches import SubjectBatch

Subject = str | int | uuid.UUID
SUBJECT_ID_INFO = b"fieldcrypt/v1/subject-id"
SUBJECT_WRAP_LABEL = b"fieldcrypt/v1/subject-key"
WRAP_PREFIX = "subject_wrap:"
SUBJECTS_SUFFIX = "#subjects"
MAX_SUBJECT_CHARS = 1024
_HEADER = fmt.HEADER_BYTES
_SEALED = _HEADER + _aead.NONCE_BYTES
_Loaded = tuple[bytes, _aead.Aead]  # a subject key as cached: the value header naming it, its cipher


def canonical_subject(subject: Subject) -> str:
    """The subject id as one string, whatever its Python type: ``5``, ``"5"`` and the CLI's
    ``--subject 5`` are one subject (an Integer column and the command line must agree).

    Raises:
        ConfigurationError: not a str, int or UUID; empty; longer than 1024 characters; a NUL.
    """
    if isinstance(subject, bool) or not isinstance(subject, str | int | uuid.UUID):
        raise ConfigurationError(
            f"a subject id must be a str, int or UUID, not {type(subject).__name__} "
            "(a row without its subject cannot use subject keys)"
        )
    text = str(subject)
    if not text or len(text) > MAX_SUBJECT_CHARS or "\x00" in text:
        # The id is not quoted: it may be personal data (an email).
        raise ConfigurationError("a subject id must be 1 to 1024 characters, without NUL")
    return text


@dataclass(frozen=True)
class SubjectShred:
    """What :meth:`SubjectKeys.shred_subject` did: the subject's tag (never the id itself),
    whether it had a key, and whether it was already shredded."""

    keyring: str
    subject_tag: str
    had_key: bool
    already_shredded: bool


@dataclass(frozen=True)
class SubjectRekey:
    """What :meth:`SubjectKeys.rekey_subjects` did: the new wrapping key, the subject keys moved
    under it, the old wrapping keys destroyed, and those still to destroy (run it again with
    ``finish=True`` once ``refresh_every`` has passed)."""

    keyring: str
    wrapping_key: str
    rewrapped: int
    destroyed: list[str]
    pending: list[str]


@dataclass(frozen=True)
class _Wrapping:
    """A keyring's subject-wrapping state, re-read every ``refresh_every``."""

    refresh_at: float
    id_key: bytes  # derives subject tags
    usable: dict[str, DataKeyRecord]  # authenticated, not destroyed wrapping keys by id
    current: DataKeyRecord | None


def _field(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">H", len(data)) + data


def loaded(key: bytes) -> _Loaded:
    """A subject key as cached: the value header naming it, and its cipher."""
    return fmt.header_for(fmt.key_id_for(key)), _aead.Aead(key)


def report_created(record: DataKeyRecord) -> None:
    """Log ``subject_key.created`` on the audit logger: the tag and the wrapping key's id."""
    (wrap_name,) = record.wraps
    audit.report("subject_key.created", record, wrap_name.removeprefix(WRAP_PREFIX))


def wrap_aad(record_keyring: str, tag: str, wrapping_key_id: str) -> bytes:
    """What a subject key's wrap is bound to: the subject's record and the key wrapping it."""
    return SUBJECT_WRAP_LABEL + _field(record_keyring) + _field(tag) + _field(wrapping_key_id)


class _Host(Protocol):
    """What the value methods below use of the ``Keyring`` they are mixed into: their ``self``
    type, so mypy checks at every call that the keyring provides it (no placeholder bodies here)."""

    _namespace: bytes | None

    def _namespaced(self, place: Place) -> bytes: ...

    def _refuse(self, blob: bytes, place: Place) -> NoReturn: ...

    def _subject_key(self, canonical: str, *, create: bool, place: Place) -> _Loaded: ...


class SubjectKeys(DataKeys):
    """Subject keys of a keyring (see the module docstring); mixed into ``Keyring``."""

    subject_key_store: KeyStore
    subject_cache: DataKeyCache
    refresh_every: timedelta
    _wrapping: _Wrapping | None
    _namespace: bytes | None
    write_only: bool

    @property
    def subjects_keyring(self) -> str:
        """The ``keyring`` field of this keyring's subject records (not a keyring name)."""
        return self.name + SUBJECTS_SUFFIX

    # -- values ---------------------------------------------------------------------------

    def encrypt_for_subject(self: _Host, subject: Subject, plaintext: bytes | str, place: Place) -> bytes:
        """Encrypt one value of ``subject`` under that subject's own key (made on first use).

        Raises:
            KeyDestroyedError: the subject was shredded.
            ConfigurationError: an unusable subject id, or a write-only producer keyring.
        """
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        header, aead = self._subject_key(canonical_subject(subject), create=True, place=place)
        where = place.encoded if self._namespace is None else self._namespaced(place)
        return header + aead.seal(data, header + where)

    def decrypt_for_subject(self: _Host, subject: Subject, blob: bytes, place: Place) -> bytes:
        """Decrypt a value of ``subject`` (the row's subject, known to the caller).

        Raises:
            DecryptionError: tampered, moved to another place, or another subject's value (opaque).
            KeyDestroyedError: the subject was shredded.
        """
        if len(blob) < fmt.OVERHEAD or blob[0] != fmt.VERSION_1:
            self._refuse(blob, place)
        header, aead = self._subject_key(canonical_subject(subject), create=False, place=place)
        # The header names the key the value was sealed under: another subject's key is refused
        # here, before AES-GCM (which would refuse it too).
        if blob[:_HEADER] != header:
            raise DecryptionError(**place.where())
        where = place.encoded if self._namespace is None else self._namespaced(place)
        try:
            return aead.open_parts(blob[_HEADER:_SEALED], blob[_SEALED:], header + where)
        except _aead.TagMismatch:
            raise DecryptionError(**place.where()) from None

    def prepare_subject_keys(self, subjects: Iterable[Subject], *, batch: int = 1000) -> SubjectBatch:
        """Make sure every subject has a key, making the missing ones ``batch`` at a time: one
        key-store read and one insert transaction per batch (a bulk import), no KMS call per
        subject. Their keys are cached as a write would cache them (up to the cache's bound), so
        values written next for the same batch make no key-store call. Shredded subjects are
        counted and stay without a key.

        Raises:
            ConfigurationError: an unusable subject id or batch size, or a write-only producer keyring.
            DecryptionError: a record at a subject's id that does not open (planted, another kind).
        """
        # Imported here: the batch module builds on this one's helpers.
        from fieldcrypt import subject_batches

        return subject_batches.prepare(self, subjects, batch)

    # -- erasure ----------------------------------------------------------------------------

    def subject_tag(self, subject: Subject) -> str:
        """The key-store id of ``subject``'s key: what logs and reports show instead of the id."""
        return self._tag(self._wrapping_state(writing=False).id_key, canonical_subject(subject))

    def shred_subject(self, subject: Subject) -> SubjectShred:
        """Erase ``subject``'s key: every value of that subject becomes unreadable, here at once and
        in other processes within the cache's ``max_age``; no other subject is touched.

        Leaves a tombstone (also when the subject had no key yet), so the id can never get a new
        key. Logs ``subject_key.shredded`` on the audit logger with the tag, never the id.
        Backups: see docs/rotation.md, "Erasing one subject".
        """
        canonical = canonical_subject(subject)
        tag = self._tag(self._wrapping_state(writing=True).id_key, canonical)
        store = self.subject_key_store
        had_key = already = False
        for _attempt in range(4):
            record = store.get(tag)
            try:
                if record is None:
                    stored = self._subject_record(tag, Status.DESTROYED, {})
                    store.put(stored)
                elif record.status is Status.DESTROYED:
                    stored, already = record, True
                else:
                    had_key = True
                    stored = store.update(record.evolve(status=Status.DESTROYED, wraps={}))
                break
            except KeyStoreConflict:
                continue  # made or changed by another process meanwhile: look again
        else:
            raise KeyStoreConflict(f"subject key {tag} kept changing; shred it again")
        self.subject_cache.evict(canonical)
        if not already:
            audit.report("subject_key.shredded", stored, had_key=str(had_key).lower())
        return SubjectShred(self.name, tag, had_key, already)

    def rekey_subjects(self, *, finish: bool = False) -> SubjectRekey:
        """Wrap every live subject key under a new subject-wrapping key; with ``finish``, destroy
        the old wrapping keys once every process has seen the new one.

        The step that lets a subject's shred reach key-store backups (docs/rotation.md, "Erasing
        one subject"): a backup's copy of a shredded subject's record is wrapped under an old
        wrapping key, which then survives only in backups, wrapped under the old master key.
        Two runs, ``refresh_every`` (plus the clock-skew allowance) apart: until every process has
        re-read the keyring, one may still wrap a new subject's key under the old wrapping key,
        and the finishing run rewraps those too before destroying it. Local AES only, one KMS
        call to wrap the new wrapping key, one key-store update per live subject.
        """
        if not finish:
            with self._current_lock:
                self._create_key(Purpose.SUBJECT_WRAP)
                self._wrapping = None
        state = self._wrapping_state(writing=True, force=True)
        current = state.current
        assert current is not None  # made above, or by the first run
        new_aead = self._wrapping_aead(current)
        new_name = WRAP_PREFIX + current.key_id
        rewrapped = 0
        for record in self.subject_key_store.list(self.subjects_keyring, Purpose.SUBJECT):
            if record.status is Status.DESTROYED or set(record.wraps) == {new_name}:
                continue
            key = self._open_subject_record(record, state, None)
            wrapped = new_aead.seal(key, wrap_aad(record.keyring, record.key_id, current.key_id))
            self.subject_key_store.update(record.evolve(wraps={new_name: wrapped}))
            rewrapped += 1
        old = sorted(k for k in state.usable if k != current.key_id)
        settled = utcnow() - current.created_at > self.refresh_every + self.clock_skew
        destroyed: list[str] = []
        if finish and settled:
            for key_id in old:
                stored = self.key_store.get(key_id)
                if stored is None or stored.status is Status.DESTROYED:
                    continue
                gone = self.key_store.update(stored.evolve(status=Status.DESTROYED, wraps={}))
                audit.report("data_key.destroyed", gone)
                self.cache.evict(self._slot(Purpose.SUBJECT_WRAP, key_id))
                destroyed.append(key_id)
        with self._current_lock:
            self._wrapping = None
        pending = [] if destroyed else old
        return SubjectRekey(self.name, current.key_id, rewrapped, destroyed, pending)

    # -- keys -------------------------------------------------------------------------------

    def _subject_key(self, canonical: str, *, create: bool, place: Place) -> _Loaded:
        if self.write_only:
            self._refuse_producer("use subject keys (they are opened to be used)")
        slot = canonical  # the cache is this keyring's own
        cache = self.subject_cache
        found: _Loaded | None = cache.fresh(slot)
        if found is not None:
            return found
        if not create:
            return cache.get(slot, lambda: self._load_subject(canonical, place, create=False))
        # A read may have remembered "no key yet" for this subject: a write makes the key.
        try:
            return cache.get(slot, lambda: self._load_subject(canonical, place, create=True))
        except KeyDestroyedError:
            raise
        except DecryptionError:
            cache.evict(slot)
            return cache.get(slot, lambda: self._load_subject(canonical, place, create=True))

    def _load_subject(self, canonical: str, place: Place, *, create: bool) -> _Loaded:
        state = self._wrapping_state(writing=create, place=place)
        tag = self._tag(state.id_key, canonical)
        store = self.subject_key_store
        record = store.get(tag)
        if record is None and create:
            made, key = self._new_subject_key(tag, state)
            try:
                store.put(made)
            except KeyStoreConflict:  # another process made it first: use theirs
                record = store.get(tag)
            else:
                report_created(made)
                return loaded(key)
        return loaded(self._open_found(record, state, place))

    def _new_subject_key(self, tag: str, state: _Wrapping) -> tuple[DataKeyRecord, bytes]:
        """A new random key for the subject of ``tag`` and its record (not stored yet)."""
        key = _aead.new_key()
        wrapping = state.current or self._new_wrapping_key()
        wrapped = self._wrapping_aead(wrapping).seal(
            key, wrap_aad(self.subjects_keyring, tag, wrapping.key_id)
        )
        return self._subject_record(tag, Status.ACTIVE, {f"{WRAP_PREFIX}{wrapping.key_id}": wrapped}), key

    def _open_found(self, record: DataKeyRecord | None, state: _Wrapping, place: Place | None) -> bytes:
        """The key of a record found at a subject's tag; a record of another kind does not open."""
        if record is None or record.keyring != self.subjects_keyring or record.purpose is not Purpose.SUBJECT:
            raise DecryptionError(**(place.where() if place is not None else {}))
        return self._open_subject_record(record, state, place)

    def _open_subject_record(self, record: DataKeyRecord, state: _Wrapping, place: Place | None) -> bytes:
        where = place.where() if place is not None else {}
        if record.status is Status.DESTROYED or not record.wraps:
            raise KeyDestroyedError(record.key_id, **where)
        for name, wrapped in record.wraps.items():
            wrapping = state.usable.get(name.removeprefix(WRAP_PREFIX))
            if wrapping is None and name.startswith(WRAP_PREFIX):
                # Made by another process after this one last looked (a rekey): look again.
                self._wrapping = None
                state = self._wrapping_state(writing=False)
                wrapping = state.usable.get(name.removeprefix(WRAP_PREFIX))
            if wrapping is None:
                continue
            try:
                return self._wrapping_aead(wrapping).open(
                    wrapped, wrap_aad(record.keyring, record.key_id, wrapping.key_id)
                )
            except _aead.AuthenticationFailed:
                continue
        raise DecryptionError(**where)

    def _wrapping_aead(self, record: DataKeyRecord) -> _aead.Aead:
        slot = self._slot(Purpose.SUBJECT_WRAP, record.key_id)
        aead: _aead.Aead = self.cache.fresh(slot) or self.cache.get(
            slot, lambda: _aead.Aead(self._unwrap(record))
        )
        return aead

    def _new_wrapping_key(self) -> DataKeyRecord:
        with self._current_lock:
            record = self._create_key(Purpose.SUBJECT_WRAP, accept=lambda found: True)
            self._wrapping = None
        return record

    def _wrapping_state(self, *, writing: bool, force: bool = False, place: Place | None = None) -> _Wrapping:
        """The subject-id key and the wrapping keys; reads never write (no anchor made)."""
        state = self._wrapping
        if state is not None and not force and time.monotonic() < state.refresh_at:
            return state
        records = self.key_store.list(self.name)
        mac_key = self._writer_mac_key(records) if writing else self._mac_key(records)
        if mac_key is None:  # no anchor: this keyring never made a subject key
            raise DecryptionError(**(place.where() if place is not None else {}))
        usable = {
            r.key_id: r
            for r in records
            if r.purpose is Purpose.SUBJECT_WRAP
            and r.status is not Status.DESTROYED
            and trust.authentic(r, mac_key)
        }
        current = self._choose(records, Purpose.SUBJECT_WRAP, mac_key).current
        state = _Wrapping(
            time.monotonic() + self.refresh_every.total_seconds(),
            _aead.derive_key(mac_key, SUBJECT_ID_INFO),
            usable,
            current,
        )
        self._wrapping = state
        return state

    def _subject_record(self, tag: str, status: Status, wraps: dict[str, bytes]) -> DataKeyRecord:
        return DataKeyRecord(
            key_id=tag,
            keyring=self.subjects_keyring,
            purpose=Purpose.SUBJECT,
            status=status,
            created_at=utcnow(),
            wraps=wraps,
        )

    @staticmethod
    def _tag(id_key: bytes, canonical: str) -> str:
        return _aead.hmac_sha256(id_key, canonical.encode("utf-8"))[: fmt.KEY_ID_BYTES].hex()
