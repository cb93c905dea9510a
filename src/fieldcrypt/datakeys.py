"""A keyring's data keys: its anchor, which records it trusts, making and unwrapping keys.

:class:`DataKeys` is the key-store side of :class:`~fieldcrypt.keyring.Keyring` (which adds the
values: encrypt, decrypt, blind index). Only records authenticated under the keyring's anchor
(fieldcrypt.keys.trust) are chosen for new values; every record may be unwrapped to decrypt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import NoReturn

from fieldcrypt import _aead, anchor, audit
from fieldcrypt import format as fmt
from fieldcrypt.cache import DataKeyCache
from fieldcrypt.errors import (
    ConfigurationError,
    DecryptionError,
    KeyAccessError,
    KeyDestroyedError,
    KeyStoreConflict,
    KeyStoreIntegrityError,
)
from fieldcrypt.keys import trust
from fieldcrypt.keys.master import MasterKey, UnwrapFailed, wraps_publicly
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, kms_context, utcnow
from fieldcrypt.place import Place
from fieldcrypt.stores.base import KeyStore

log = logging.getLogger("fieldcrypt")
Slot = tuple[int, bytes]  # a data key's place in the cache: (keyring scope, kind + key id)


class DataKeys:
    """The key-store side of a keyring (see the module docstring); set up by ``Keyring``."""

    name: str
    tenant: str | None
    master_key: MasterKey
    master_keys: tuple[MasterKey, ...]
    key_store: KeyStore
    cache: DataKeyCache
    _scope: int
    clock_skew: timedelta
    _anchor: anchor.AnchorCheck
    _exhausted: set[str]
    _reported: set[tuple[str, str]]
    _current_lock: threading.Lock

    def chosen_key_id(self, purpose: Purpose = Purpose.ENCRYPTION) -> str | None:
        """The key new values would use now, found without creating one (dry runs and status
        never write); None when there is none yet. Unwraps the anchor to authenticate records."""
        records = self.key_store.list(self.name)
        key = self._mac_key(records)
        if key is None:
            return None
        current = self._choose(records, purpose, key).current
        return None if current is None else current.key_id

    def anchor_fingerprint(self) -> str | None:
        """What to pin as ``anchor_id`` (None while the keyring has no anchor). Unwraps it."""
        records = self.key_store.list(self.name)
        found = self._anchor.find(records)
        if found is None:
            return None
        self._mac_key(records)  # refuses a replaced or edited anchor
        secret: bytes = self.cache.get(
            self._slot(Purpose.ANCHOR, found.key_id), lambda: self._unwrap(found, committed=False)
        )
        return anchor.fingerprint(secret)

    def key_states(self) -> dict[str, str]:
        """Each record's standing for new values, by key id: ``current``, ``usable``,
        ``unauthenticated``, ``dated in the future``, ``exhausted by this process``, ``anchor``
        or its status (``retired``, ``destroyed``). For ``keys list`` and ``status``."""
        records = self.key_store.list(self.name)
        key = self._mac_key(records)
        states = {r.key_id: r.status.value for r in records}
        for purpose in (Purpose.ENCRYPTION, Purpose.BLIND_INDEX, Purpose.SUBJECT_WRAP):
            choice = self._choose(records, purpose, key, report=False)
            states |= choice.refused
            states |= {r.key_id: "usable" for r in choice.usable}
            if choice.current is not None:
                states[choice.current.key_id] = "current"
        states |= {r.key_id: "anchor" for r in records if r.purpose is Purpose.ANCHOR}
        return states

    def _create_key(
        self, purpose: Purpose, *, accept: Callable[[DataKeyRecord], bool] | None = None
    ) -> DataKeyRecord:
        """Make, authenticate and store a key of the next generation of ``purpose``.

        When another process takes that generation first, look again: its key is used if
        ``accept`` allows (a routine rotation), else the next generation is tried (``rotate()``).
        """
        for attempt in range(4):
            records = self.key_store.list(self.name)
            self._check_master_key(records)  # first: its message says what to do
            mac_key = self._writer_mac_key(records)
            choice = self._choose(records, purpose, mac_key)
            if attempt and accept is not None and choice.current is not None and accept(choice.current):
                return choice.current
            record, data_key = self._wrapped_new_key(purpose, choice.next_generation)
            record = trust.sign(record, mac_key)
            try:
                self.key_store.put(record)
            except KeyStoreConflict:
                continue
            audit.report(
                "data_key.created", record, self.master_key.key_id, generation=str(record.generation)
            )
            self._cache_new_key(purpose, record.key_id, data_key)
            return record
        raise KeyStoreConflict(
            f"keyring {self.name!r}: other processes kept taking each new generation; retry"
        )

    def _wrapped_new_key(
        self, purpose: Purpose, generation: int | None = None
    ) -> tuple[DataKeyRecord, bytes]:
        """A fresh data key wrapped under the master key, as an (unsigned, unstored) active record,
        with the plaintext key. ``generation``: None for a write-only producer's own keys."""
        data_key = _aead.new_key()
        key_id = fmt.key_id_for(data_key).hex()
        record = DataKeyRecord(
            key_id=key_id,
            keyring=self.name,
            purpose=purpose,
            status=Status.ACTIVE,
            created_at=utcnow(),
            wraps={self.master_key.key_id: self._wrap(data_key, kms_context(self.name, key_id, purpose))},
            generation=generation,
        )
        return record, data_key

    def _refuse_producer(self, what: str) -> NoReturn:
        """Refuse what a write-only producer keyring cannot do (values, subject keys, search)."""
        raise KeyAccessError(
            f"keyring {self.name!r} is a write-only producer (master key {self.master_key.key_id} is "
            f"the public half of an RSA KMS key): it cannot {what}, not even its own values; do that "
            "in a reader process configured with KmsRsaMasterKey and allowed kms:Decrypt",
            master_key_id=self.master_key.key_id,
            code="WriteOnlyProducer",
        )

    def _wrap(self, data_key: bytes, context: dict[str, str]) -> bytes:
        with self._naming_tenant():
            return self.master_key.wrap(data_key, context)

    @contextmanager
    def _naming_tenant(self) -> Iterator[None]:
        """A tenant's keyring says whose key failed: with one KMS key per customer, the operator
        must know which customer's key is disabled or denied (and that the others are not)."""
        try:
            yield
        except KeyAccessError as exc:
            if self.tenant is None or exc.tenant is not None:
                raise
            raise KeyAccessError(
                f"tenant {self.tenant!r}: {exc}",
                master_key_id=exc.master_key_id,
                code=exc.code,
                tenant=self.tenant,
            ) from exc

    def _cache_new_key(self, purpose: Purpose, key_id: str, data_key: bytes) -> None:
        loaded: object = _aead.HmacKey(data_key) if purpose is Purpose.BLIND_INDEX else _aead.Aead(data_key)
        self.cache.entry(self._slot(purpose, key_id), lambda: loaded)

    def _mac_key(self, records: Sequence[DataKeyRecord]) -> bytes | None:
        """The key authenticating this keyring's records, from its anchor; None when there is no
        anchor (a 0.1 key store, or a keyring not used yet). Never writes: for reads.

        Raises:
            KeyStoreIntegrityError: a replaced or edited anchor.
        """
        found = self._anchor.find(records)
        return None if found is None else self._open_anchor(found)

    def _writer_mac_key(self, records: Sequence[DataKeyRecord], *, adopting: bool = False) -> bytes:
        """As :meth:`_mac_key`, making the anchor of a new keyring.

        Raises:
            ConfigurationError: a SQL key-store table in the 0.1 layout: upgrade it.
            KeyStoreIntegrityError: a replaced or edited anchor.
        """
        found = self._anchor.find(records)
        if found is None:
            # Records without an anchor (0.1 keys, producers' keys) stay decrypt-only; a SQL
            # table in the 0.1 layout refuses the anchor itself until `fieldcrypt keys upgrade`.
            found = self._create_anchor()
        return self._open_anchor(found)

    def _open_anchor(self, found: DataKeyRecord) -> bytes:
        # An anchor proves who made it only through a wrap nobody else could have made: under an
        # RSA key anyone holding the public half (a write-only producer) could file one, and then
        # authenticate keys of their own. Such wraps count only when anchor_id pins the secret.
        using = self.master_keys
        if self._anchor.pinned is None:
            using = tuple(m for m in self.master_keys if not wraps_publicly(m))
            if not any(m.can_unwrap(recorded) for m in using for recorded in found.wraps):
                audit.warn(
                    "anchor.public_wrap", keyring=self.name, wrapped_under=",".join(sorted(found.wraps))
                )
                raise KeyStoreIntegrityError(
                    f"keyring {self.name!r}: its anchor is wrapped only under {sorted(found.wraps)}, "
                    "under which anyone holding the public key can wrap, so it authenticates nothing: "
                    "new values are refused. Give the keyring a symmetric master key (an RSA key "
                    "belongs in also_decrypt_with, to read producers' values), or pin anchor_id"
                )
        secret: bytes = self.cache.get(
            self._slot(Purpose.ANCHOR, found.key_id),
            lambda: self._unwrap(found, committed=False, using=using),
        )
        return self._anchor.mac_key(found, secret)

    def _create_anchor(self) -> DataKeyRecord:
        with self._naming_tenant():
            record, secret = self._anchor.new(self.master_key)
        try:
            self.key_store.put(record)
        except KeyStoreConflict:  # another process made it first: use theirs
            theirs = self.key_store.get(record.key_id)
            if theirs is None:
                raise
            return theirs
        audit.report("anchor.created", record, self.master_key.key_id)
        self.cache.entry(self._slot(Purpose.ANCHOR, record.key_id), lambda: secret)
        return record

    def _check_master_key(self, records: Sequence[DataKeyRecord]) -> None:
        """Refuse to wrap a new key under a master key other than the anchor's: no correctly
        configured process could open it, and all their writes would fail."""
        found = self._anchor.find(records)
        if found is not None and not any(self.master_key.can_unwrap(w) for w in found.wraps):
            raise ConfigurationError(
                f"keyring {self.name!r} is wrapped under {sorted(found.wraps)}, but this process's "
                f"master key is {self.master_key.key_id}: a key made here would be unreadable to every "
                "other process. Configure the keyring's master key; to move the keyring to this one, "
                "run `fieldcrypt keys rewrap --to <this key>` with the current key configured first"
            )

    def _choose(
        self,
        records: Sequence[DataKeyRecord],
        purpose: Purpose,
        mac_key: bytes | None,
        *,
        report: bool = True,
    ) -> trust.Choice:
        choice = trust.choose(
            records,
            purpose,
            mac_key,
            now=utcnow(),
            clock_skew=self.clock_skew,
            exclude=frozenset(self._exhausted),
        )
        for key_id, reason in choice.refused.items() if report else ():
            if reason != trust.EXHAUSTED and (key_id, reason) not in self._reported:
                self._reported.add((key_id, reason))
                log.warning(
                    "fieldcrypt: keyring %s: data key %s is %s; never used for new values",
                    self.name,
                    key_id,
                    reason,
                )
                audit.warn("data_key.refused", keyring=self.name, data_key_id=key_id, reason=reason)
        return choice

    def _unwrap_aead(self, record: DataKeyRecord, place: Place | None = None) -> _aead.Aead:
        return _aead.Aead(self._unwrap(record, place))

    def _unwrap(
        self,
        record: DataKeyRecord,
        place: Place | None = None,
        *,
        committed: bool = True,
        using: Sequence[MasterKey] | None = None,
    ) -> bytes:
        """The key ``record`` wraps. ``committed``: its id must be derived from it (every data key;
        not the anchor, whose id is its place and whose fingerprint is checked by AnchorCheck)."""
        where = place.where() if place is not None else {}
        if record.status is Status.DESTROYED or not record.wraps:
            raise KeyDestroyedError(record.key_id, **where)
        with self._naming_tenant():
            return self._unwrap_under(record, where, committed, using)

    def _unwrap_under(
        self,
        record: DataKeyRecord,
        where: dict[str, str | None],
        committed: bool,
        using: Sequence[MasterKey] | None,
    ) -> bytes:
        context = kms_context(record.keyring, record.key_id, record.purpose)
        for master_key, recorded_id, wrapped in self._unwrap_candidates(record, using):
            try:
                data_key = master_key.unwrap(wrapped, context)
            except UnwrapFailed:
                continue
            # Key commitment: the id is derived from the key; a key that does not hash to the id
            # it was filed under was swapped or forged.
            if committed and not _aead.constant_time_equal(
                fmt.key_id_for(data_key).hex().encode(), record.key_id.encode()
            ):
                break
            audit.report("data_key.unwrapped", record, master_key.key_id, wrapped_under=recorded_id)
            return data_key
        else:
            if not any(True for _ in self._unwrap_candidates(record, using)):
                raise KeyAccessError(
                    f"data key {record.key_id} of keyring {self.name!r} is wrapped only under "
                    f"{sorted(record.wraps)}; configure one of those master keys "
                    f"(this keyring has {[m.key_id for m in self.master_keys]})"
                )
        raise DecryptionError(**where)

    def _slot(self, purpose: Purpose, key_id: str) -> Slot:
        """Cache slot: this keyring's scope, then the purpose, so a value can never borrow a
        blind-index key (or the anchor). An encryption key's slot ends with the header of the
        values it encrypts (version 1 + key id); a blind-index key's starts with b"B" and the
        anchor's with b"A", a subject-wrapping key's with b"W": bytes no value version uses."""
        kind = {
            Purpose.ENCRYPTION: fmt.header_for(b""),
            Purpose.BLIND_INDEX: b"B",
            Purpose.ANCHOR: b"A",
            Purpose.SUBJECT_WRAP: b"W",
        }
        return self._scope, kind[purpose] + bytes.fromhex(key_id)

    def _unwrap_candidates(
        self, record: DataKeyRecord, using: Sequence[MasterKey] | None = None
    ) -> Iterable[tuple[MasterKey, str, bytes]]:
        for master_key in self.master_keys if using is None else using:
            for recorded_id, wrapped in record.wraps.items():
                if master_key.can_unwrap(recorded_id):
                    yield master_key, recorded_id, wrapped
