"""What the engine does to one stored value: encrypt it, move it to the current key, decrypt it,
or recompute its blind index. Each action says cheaply whether a value needs work (so a rerun
over a finished table reads but decrypts and writes nothing) and then produces the new content.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from fieldcrypt import index_records
from fieldcrypt.errors import ConfigurationError, DecryptionError, UnknownKeyError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.record import Purpose
from fieldcrypt.rotation.spec import ColumnSpec


class Action(ABC):
    """Base: ``needs_work`` is metadata only; ``apply`` may decrypt and encrypt."""

    name = "action"
    writes_index = False
    reads_values = True  # needs the column's codec (only re-encryption moves bytes it never reads)

    def __init__(self, spec: ColumnSpec, keyring: Keyring) -> None:
        if self.reads_values:
            spec.the_codec  # noqa: B018 - refuse a spec without the column's type before any row
        self.spec = spec
        self.keyring = keyring

    def prepare(self, *, dry_run: bool) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """Make sure keys exist before the first batch (never during a dry run)."""

    @abstractmethod
    def needs_work(self, stored: object, index: object) -> bool: ...

    @abstractmethod
    def apply(self, row: Any, stored: object, index: object = None) -> tuple[object, bytes | None]: ...

    def finish(self, complete: bool) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """After a run that wrote (``complete``: every row of the whole column, none failed)."""

    def _encrypt(self, data: bytes, row: Any) -> tuple[object, bytes | None]:
        blob = self.keyring.encrypt(data, self.spec.place(row))
        return self.spec.to_stored(blob), None

    def _decrypt(self, stored: object, row: Any) -> bytes:
        blob = self.spec.as_blob(stored)
        assert blob is not None
        return self.keyring.decrypt(blob, self.spec.place(row))


class EncryptAction(Action):
    """Plaintext -> ciphertext (adoption). A value already shaped like a ciphertext is never
    encrypted again; one that names no data key of the keyring (plaintext that begins with byte
    0x01, or another keyring's value) is not taken for done either: its row is listed as failed."""

    name = "encrypt"

    def __init__(self, spec: ColumnSpec, keyring: Keyring) -> None:
        super().__init__(spec, keyring)
        self.known: set[str] = set()

    def prepare(self, *, dry_run: bool) -> None:
        if not dry_run:
            self.keyring.current_key_id()
        self._refresh()

    def _refresh(self) -> None:
        self.known = {r.key_id for r in self.keyring.records(Purpose.ENCRYPTION)}

    def needs_work(self, stored: object, index: object) -> bool:
        if stored is None:
            return False
        blob = self.spec.as_blob(stored)
        return blob is None or self.keyring.key_id_of(blob) not in self.known

    def apply(self, row: Any, stored: object, index: object = None) -> tuple[object, bytes | None]:
        blob = self.spec.as_blob(stored)
        if blob is None:
            return self._encrypt(self.spec.plaintext_bytes(stored), row)
        self._refresh()  # the application may have made a data key since the run began
        if self.keyring.key_id_of(blob) in self.known:
            return stored, None
        raise UnknownKeyError(**self.spec.place(row).where())


class ReencryptAction(Action):
    """Ciphertext under an older data key -> ciphertext under the keyring's current one."""

    name = "reencrypt"
    reads_values = False

    def __init__(self, spec: ColumnSpec, keyring: Keyring) -> None:
        super().__init__(spec, keyring)
        self.current: set[str] = set()

    def prepare(self, *, dry_run: bool) -> None:
        if dry_run:
            chosen = self.keyring.chosen_key_id()
            self.current = {chosen} if chosen else set()
        else:
            self.current = {self.keyring.current_key_id()}

    def needs_work(self, stored: object, index: object) -> bool:
        blob = self.spec.as_blob(stored) if stored is not None else None
        return blob is not None and self.keyring.key_id_of(blob) not in self.current

    def apply(self, row: Any, stored: object, index: object = None) -> tuple[object, bytes | None]:
        new, _ = self._encrypt(self._decrypt(stored, row), row)
        # The keyring may roll to a newer key mid-run (age or use limits): values under it are
        # current too, so a rerun does not move them again.
        blob = self.spec.as_blob(new)
        assert blob is not None
        self.current.add(self.keyring.key_id_of(blob))
        return new, None


class DecryptAction(Action):
    """Ciphertext -> the plaintext's database text form (the downgrade of adoption)."""

    name = "decrypt"

    def needs_work(self, stored: object, index: object) -> bool:
        return stored is not None and self.spec.as_blob(stored) is not None

    def apply(self, row: Any, stored: object, index: object = None) -> tuple[object, bytes | None]:
        return self.spec.plaintext_to_store(self._decrypt(stored, row), row), None


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

    def __init__(self, spec: ColumnSpec, keyring: Keyring) -> None:
        super().__init__(spec, keyring)
        self.key_id = ""
        self.check_rows = False

    def prepare(self, *, dry_run: bool) -> None:
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

    def needs_work(self, stored: object, index: object) -> bool:
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

    def apply(self, row: Any, stored: object, index: object = None) -> tuple[object, bytes | None]:
        return stored, self.index_of(row, stored, index)

    def finish(self, complete: bool) -> None:
        if complete and self.key_id:
            index_records.reindexed(self.keyring, self.spec.index_place(), self.spec.normalizer, self.key_id)


class RebindAction(Action):
    """A renamed column's values still bound to its old place (``bound_as``) -> bound to its own.

    Which place a ciphertext is bound to cannot be read from it: each value is opened at the
    column's own place first (already moved, by an earlier run or by the application: kept, its
    blind index recomputed only if it differs) and otherwise at the old place, then encrypted
    again at its own place under the current data key.
    """

    name = "rebind"

    def __init__(self, spec: ColumnSpec, keyring: Keyring) -> None:
        super().__init__(spec, keyring)
        if spec.bound_as is None:
            raise ConfigurationError(
                f"rebind of {spec.table}.{spec.column}: its type names no old place; declare "
                "Encrypted(..., bound_as=(old_table, old_column))"
            )
        self.writes_index = spec.index_column is not None

    def prepare(self, *, dry_run: bool) -> None:
        if not dry_run:
            self.keyring.current_key_id()

    def needs_work(self, stored: object, index: object) -> bool:
        return stored is not None and self.spec.as_blob(stored) is not None

    def apply(self, row: Any, stored: object, index: object = None) -> tuple[object, bytes | None]:
        blob = self.spec.as_blob(stored)
        assert blob is not None
        own, old = self.spec.places(row)
        try:
            data, new = self.keyring.decrypt(blob, own), stored
        except DecryptionError:
            data = self.keyring.decrypt(blob, old)
            new = self.spec.to_stored(self.keyring.encrypt(data, own))
        if not self.writes_index:
            return new, None
        return new, self.spec.index(self.spec.the_codec.decode(data, own))


ACTIONS: dict[str, type[Action]] = {
    a.name: a for a in (EncryptAction, ReencryptAction, DecryptAction, ReindexAction, RebindAction)
}
