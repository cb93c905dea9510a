"""A keyring's anchor: where it lives, how a new keyring makes one, and refusing a replaced one.

The anchor is a random 32-byte secret wrapped under the master key (encryption context purpose
``anchor``), filed under one key id per keyring (:func:`fieldcrypt.keys.trust.anchor_slot`), so
two processes creating it at once collide instead of making two. The key that authenticates every
other record is derived from it; only a ``kms:Decrypt`` holder can open it.

Someone who can write the key store *and* call KMS ``Encrypt`` with purpose ``anchor`` (the
published IAM policies give that to key administrators only, docs/iam.md) could delete the anchor
and file one of their own. A process refuses an anchor other than the first it opened, and
pinning ``anchor_id`` (its fingerprint) makes every process, even a freshly started one, refuse it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fieldcrypt import _aead, audit
from fieldcrypt import format as fmt
from fieldcrypt.errors import ConfigurationError, KeyStoreIntegrityError
from fieldcrypt.keys import trust
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, kms_context, utcnow

log = logging.getLogger("fieldcrypt")


def fingerprint(secret: bytes) -> str:
    """The anchor's fingerprint (what ``anchor_id`` pins): its committing id, as for data keys."""
    return fmt.key_id_for(secret).hex()


class AnchorCheck:
    """Finds one keyring's anchor among its records and checks the secret it opens to."""

    def __init__(self, keyring: str, pinned: str | None) -> None:
        if pinned is not None and (len(pinned) != 40 or any(c not in "0123456789abcdef" for c in pinned)):
            raise ConfigurationError(
                "anchor_id must be the 40 lowercase hex digits `fieldcrypt keys list` prints"
            )
        self.keyring = keyring
        self.slot = trust.anchor_slot(keyring)
        self.pinned = pinned
        self._trusted = pinned  # the first anchor this process opened, unless one is pinned
        self._reported: set[str] = set()

    def find(self, records: Iterable[DataKeyRecord]) -> DataKeyRecord | None:
        """The anchor record (at its slot), reporting any other record that claims to be one."""
        found = None
        for record in records:
            if record.purpose is not Purpose.ANCHOR:
                continue
            if record.key_id == self.slot and record.status is not Status.DESTROYED:
                found = record
            elif record.key_id not in self._reported:
                self._reported.add(record.key_id)
                log.warning(
                    "fieldcrypt: keyring %s: key-store record %s claims to be an anchor but is not at "
                    "the anchor's place; ignored (did someone plant it? see docs/threat-model.md)",
                    self.keyring,
                    record.key_id,
                )
                audit.warn("anchor.stray", keyring=self.keyring, data_key_id=record.key_id)
        return found

    def new(self, master_key: MasterKey) -> tuple[DataKeyRecord, bytes]:
        """A new anchor record wrapped under ``master_key``, and its secret (for a new keyring)."""
        secret = _aead.new_key()
        context = kms_context(self.keyring, self.slot, Purpose.ANCHOR)
        record = DataKeyRecord(
            key_id=self.slot,
            keyring=self.keyring,
            purpose=Purpose.ANCHOR,
            status=Status.ACTIVE,
            created_at=utcnow(),
            wraps={master_key.key_id: master_key.wrap(secret, context)},
            generation=0,
        )
        return trust.sign(record, trust.mac_key(secret)), secret

    def mac_key(self, record: DataKeyRecord, secret: bytes) -> bytes:
        """The record-authentication key, once ``secret`` (opened from ``record``) is known good.

        Raises:
            KeyStoreIntegrityError: not the pinned anchor, not the one this process first opened,
                or the anchor record itself was edited.
        """
        seen = fingerprint(secret)
        key = trust.mac_key(secret)
        expected = self._trusted
        if expected is not None and not _aead.constant_time_equal(seen.encode(), expected.encode()):
            audit.warn("anchor.replaced", keyring=self.keyring, expected=expected, found=seen)
            raise KeyStoreIntegrityError(
                f"keyring {self.keyring!r}: its anchor in the key store is {seen}, not "
                f"{'the pinned' if self.pinned else 'the one this process first used,'} {expected}: "
                "the key store was tampered with. New values are refused; restore the anchor row "
                "from a backup (see docs/threat-model.md)"
            )
        if not trust.authentic(record, key):
            raise KeyStoreIntegrityError(
                f"keyring {self.keyring!r}: its anchor record was edited; restore it from a backup"
            )
        self._trusted = seen
        return key
