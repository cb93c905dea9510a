"""What the engine does to one stored value: encrypt it, move it to the current key, decrypt it,
or recompute its blind index. Each action says cheaply whether a value needs work (so a rerun
over a finished table reads but decrypts and writes nothing) and then produces the new content.

Each value is opened and sealed with its row's key (:class:`~fieldcrypt.rotation.rowkeys.RowKeys`):
the column's keyring, the row's tenant's, and for a per-subject column the row's subject's own
key. A value of a shredded subject is skipped and counted (:class:`ShreddedSubject`), never
listed as a failure: it was erased on purpose.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from fieldcrypt import index_records
from fieldcrypt.column import open_at
from fieldcrypt.errors import (
    ConfigurationError,
    DecryptionError,
    KeyDestroyedError,
    ShreddedSubject,
    UnknownKeyError,
)
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.record import Purpose, Status
from fieldcrypt.rotation.rowkeys import NO_CHOICE, Chosen, RowKeys
from fieldcrypt.rotation.spec import ColumnSpec

# What a dry run "writes" where writing would make a subject's key: counted, never stored.
WOULD_SEAL = object()


class Action(ABC):
    """Base: ``needs_work`` is metadata only; ``apply`` may decrypt and encrypt."""

    name = "action"
    writes_index = False
    reads_values = True  # needs the column's codec (only re-encryption moves bytes it never reads)

    def __init__(self, spec: ColumnSpec, keys: RowKeys) -> None:
        if self.reads_values:
            spec.the_codec  # noqa: B018 - refuse a spec without the column's type before any row
        self.spec = spec
        self.keys = keys
        self.dry_run = False

    @property
    def keyring(self) -> Keyring:
        """The column's one keyring (not per tenant)."""
        return self.keys.keyring()

    def prepare(self, *, dry_run: bool) -> None:
        """Make sure keys exist before the first batch (never during a dry run)."""
        self.dry_run = dry_run

    @abstractmethod
    def needs_work(self, stored: object, index: object, chosen: Chosen = NO_CHOICE) -> bool: ...

    @abstractmethod
    def apply(
        self, row: Any, stored: object, index: object = None, chosen: Chosen = NO_CHOICE
    ) -> tuple[object, bytes | None]: ...

    def finish(self, complete: bool) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """After a run that wrote (``complete``: every row of the whole column, none failed)."""

    def _encrypt(self, data: bytes, row: Any, chosen: Chosen = NO_CHOICE) -> tuple[object, bytes | None]:
        try:
            blob = self.keys.seal(data, self.spec.place(row), chosen)
        except KeyDestroyedError as exc:
            if not self.keys.per_subject:
                raise
            raise ShreddedSubject(exc) from None
        return self.spec.to_stored(blob), None

    def _decrypt(self, stored: object, row: Any, chosen: Chosen = NO_CHOICE) -> bytes:
        blob = self.spec.as_blob(stored)
        assert blob is not None
        return self._open(blob, self.spec.places(row)[:1], chosen)

    def _open(self, blob: bytes, places: Any, chosen: Chosen) -> bytes:
        """Open a stored value as the application does; a per-subject column's value still under
        a shared data key (written before the column was per subject) with that key."""
        if self.keys.per_subject and self.keys.is_shared(blob, chosen):
            return open_at(self.keys.keyring(chosen), blob, places)
        try:
            return self.keys.open(blob, places, chosen)
        except KeyDestroyedError as exc:
            if not self.keys.per_subject:
                raise
            raise ShreddedSubject(exc) from None

    def _refuse_dry_subject_write(self, chosen: Chosen) -> None:
        """In a dry run, a new subject key is never made: a shredded subject is still told apart."""
        keyring = self.keys.keyring(chosen)
        record = keyring.subject_key_store.get(keyring.subject_tag(chosen.subject))
        if record is not None and record.status is Status.DESTROYED:
            raise ShreddedSubject(KeyDestroyedError(record.key_id))


class EncryptAction(Action):
    """Plaintext -> ciphertext (adoption). A value already shaped like a ciphertext is never
    encrypted again; one that names no data key of the keyring (plaintext that begins with byte
    0x01, or another keyring's value) is not taken for done either: its row is listed as failed.
    In a per-subject column such a value is done when it opens with its subject's key."""

    name = "encrypt"

    def prepare(self, *, dry_run: bool) -> None:
        super().prepare(dry_run=dry_run)
        if not self.keys.per_tenant:
            if not dry_run and not self.keys.per_subject:
                self.keyring.current_key_id()
            self.keys.forget_shared()

    def needs_work(self, stored: object, index: object, chosen: Chosen = NO_CHOICE) -> bool:
        if stored is None:
            return False
        blob = self.spec.as_blob(stored)
        return blob is None or not self.keys.is_shared(blob, chosen)

    def apply(
        self, row: Any, stored: object, index: object = None, chosen: Chosen = NO_CHOICE
    ) -> tuple[object, bytes | None]:
        blob = self.spec.as_blob(stored)
        if blob is None:
            data = self.spec.plaintext_bytes(stored)
            if self.dry_run and self.keys.per_subject:
                return WOULD_SEAL, None  # a dry run makes no subject key
            # A shredded subject's plaintext cannot be sealed: the row is listed as failed (the
            # value is still in clear), not skipped.
            return self.spec.to_stored(self.keys.seal(data, self.spec.place(row), chosen)), None
        if self.keys.per_subject:
            self._open(blob, self.spec.places(row), chosen)  # done if it opens; else listed
            return stored, None
        self.keys.forget_shared()  # the application may have made a data key since the run began
        if self.keys.is_shared(blob, chosen):
            return stored, None
        raise UnknownKeyError(**self.spec.place(row).where())


class ReencryptAction(Action):
    """Ciphertext under an older data key -> ciphertext under the keyring's current one.

    In a per-subject column the current key of a value is its subject's own key: values still
    under a shared data key (written before the column was per subject) move to it, values of a
    shredded subject are skipped and counted, and values already under a subject's key are left
    as they are (a subject has one key, which never rotates).
    """

    name = "reencrypt"
    reads_values = False

    def __init__(self, spec: ColumnSpec, keys: RowKeys) -> None:
        super().__init__(spec, keys)
        self.current: set[str] = set()  # current data keys (of every tenant keyring met so far)
        self._seen: set[str] = set()  # keyrings whose current key is in ``current``

    def prepare(self, *, dry_run: bool) -> None:
        super().prepare(dry_run=dry_run)
        if not self.keys.per_tenant and not self.keys.per_subject:
            self._current_of(self.keyring)

    def _current_of(self, keyring: Keyring) -> None:
        if keyring.name in self._seen:
            return
        if self.dry_run:
            chosen = keyring.chosen_key_id()
            self.current |= {chosen} if chosen else set()
        else:
            self.current.add(keyring.current_key_id())
        self._seen.add(keyring.name)

    def needs_work(self, stored: object, index: object, chosen: Chosen = NO_CHOICE) -> bool:
        blob = self.spec.as_blob(stored) if stored is not None else None
        if blob is None:
            return False
        if self.keys.per_subject:
            return self.keys.is_shared(blob, chosen)
        keyring = self.keys.keyring(chosen)
        self._current_of(keyring)
        return keyring.key_id_of(blob) not in self.current

    def apply(
        self, row: Any, stored: object, index: object = None, chosen: Chosen = NO_CHOICE
    ) -> tuple[object, bytes | None]:
        data = self._decrypt(stored, row, chosen)
        if self.dry_run and self.keys.per_subject:
            self._refuse_dry_subject_write(chosen)
            return WOULD_SEAL, None
        new, _ = self._encrypt(data, row, chosen)
        if not self.keys.per_subject:
            # The keyring may roll to a newer key mid-run (age or use limits): values under it
            # are current too, so a rerun does not move them again.
            blob = self.spec.as_blob(new)
            assert blob is not None
            self.current.add(self.keys.keyring(chosen).key_id_of(blob))
        return new, None


class DecryptAction(Action):
    """Ciphertext -> the plaintext's database text form (the downgrade of adoption). A shredded
    subject's value cannot be decrypted: its row is listed as failed, so the column is never
    given back its plaintext type while it still holds ciphertext."""

    name = "decrypt"

    def needs_work(self, stored: object, index: object, chosen: Chosen = NO_CHOICE) -> bool:
        return stored is not None and self.spec.as_blob(stored) is not None

    def apply(
        self, row: Any, stored: object, index: object = None, chosen: Chosen = NO_CHOICE
    ) -> tuple[object, bytes | None]:
        try:
            data = self._decrypt(stored, row, chosen)
        except ShreddedSubject as skipped:
            raise skipped.error from None
        return self.spec.plaintext_to_store(data, row), None


class ReindexAction(Action):
    """Recompute the blind index under the newest blind-index key (after ``rotate_blind_index``).

    Refuses a column whose recorded token options (keyring, token length, normaliser) differ from
    the spec's: tokens recomputed without the column's normaliser would match no search. A column
    with no record yet (written before records existed) is checked row by row instead: a stored
    token that none of the active index keys gives for the value was made with other options, and
    the row is listed as failed rather than rewritten.
    """

    name = "reindex"
    writes_index = True

    def __init__(self, spec: ColumnSpec, keys: RowKeys) -> None:
        super().__init__(spec, keys)
        if keys.per_tenant:
            raise ConfigurationError(
                f"reindex of {spec.table}.{spec.column}: each tenant has its own blind-index keys; "
                "reindex one tenant at a time (--tenant ID)"
            )
        self.key_id = ""
        self.check_rows = False

    def prepare(self, *, dry_run: bool) -> None:
        super().prepare(dry_run=dry_run)
        if self.spec.index_column is None:
            raise ConfigurationError(f"{self.spec.table}.{self.spec.column} has no blind-index column")
        place = self.spec.index_place()
        # With a record, compare (a mismatch raises before any row). Without one, nothing is
        # recorded until a run has found every stored token reproducible (``finish``): a run
        # with the wrong options must not record them for the application to be refused by.
        self.check_rows = index_records.find(self.keyring, place) is None
        if not self.check_rows:
            index_records.record(self.keyring, place, self.spec.normalizer)
        if not dry_run:
            self.keyring.blind_index(b"", place)  # makes the first index key if there is none
            self.key_id = self.keyring.chosen_key_id(Purpose.BLIND_INDEX) or ""

    def needs_work(self, stored: object, index: object, chosen: Chosen = NO_CHOICE) -> bool:
        # Which key made an index value cannot be read from it (a bare HMAC): the engine
        # recomputes it and skips the write when it is already the newest key's.
        return stored is not None

    def index_of(self, row: Any, stored: object, index: object = None) -> bytes:
        value = self.spec.the_codec.decode(self._decrypt(stored, row), self.spec.place(row))
        if self.spec.normalizer is not None:
            value = self.spec.normalizer(value)
        data = self.spec.the_codec.to_bytes(value)
        if self.check_rows and index is not None:
            held = bytes(index) if isinstance(index, memoryview | bytearray) else index
            if held not in self.keyring.blind_index_candidates(data, self.spec.index_place()):
                raise ConfigurationError(  # listed as the row's failure; the row is left as it is
                    f"{self.spec.table}.{self.spec.index_column}: the stored token was not made with "
                    "these options (normalizer, keyring, token length); pass the column's type "
                    "(--metadata) so reindex does not make the row unfindable"
                )
        return self.keyring.blind_index(data, self.spec.index_place())

    def apply(
        self, row: Any, stored: object, index: object = None, chosen: Chosen = NO_CHOICE
    ) -> tuple[object, bytes | None]:
        return stored, self.index_of(row, stored, index)

    def finish(self, complete: bool) -> None:
        if complete and self.key_id:
            index_records.reindexed(self.keyring, self.spec.index_place(), self.spec.normalizer, self.key_id)


class RebindAction(Action):
    """A renamed column's values still bound to its old place (``bound_as``) -> bound to its own.

    Which place a ciphertext is bound to cannot be read from it: each value is opened at the
    column's own place first (already moved, by an earlier run or by the application: kept, its
    blind index recomputed only if it differs) and otherwise at the old place, then encrypted
    again at its own place under the current data key (or its subject's key).
    """

    name = "rebind"

    def __init__(self, spec: ColumnSpec, keys: RowKeys) -> None:
        super().__init__(spec, keys)
        if spec.bound_as is None:
            raise ConfigurationError(
                f"rebind of {spec.table}.{spec.column}: its type names no old place; declare "
                "Encrypted(..., bound_as=(old_table, old_column))"
            )
        self.writes_index = spec.index_column is not None

    def prepare(self, *, dry_run: bool) -> None:
        super().prepare(dry_run=dry_run)
        if not dry_run and not self.keys.per_tenant and not self.keys.per_subject:
            self.keyring.current_key_id()

    def needs_work(self, stored: object, index: object, chosen: Chosen = NO_CHOICE) -> bool:
        return stored is not None and self.spec.as_blob(stored) is not None

    def apply(
        self, row: Any, stored: object, index: object = None, chosen: Chosen = NO_CHOICE
    ) -> tuple[object, bytes | None]:
        blob = self.spec.as_blob(stored)
        assert blob is not None
        own, old = self.spec.places(row)
        try:
            data, new = self._open(blob, (own,), chosen), stored
        except ShreddedSubject:
            raise
        except DecryptionError:
            data = self._open(blob, (old,), chosen)
            if self.dry_run and self.keys.per_subject:
                return WOULD_SEAL, None
            new, _ = self._encrypt(data, row, chosen)
        if not self.writes_index:
            return new, None
        return new, self.spec.index(self.spec.the_codec.decode(data, own), tenant=chosen.tenant)


ACTIONS: dict[str, type[Action]] = {
    a.name: a for a in (EncryptAction, ReencryptAction, DecryptAction, ReindexAction, RebindAction)
}
