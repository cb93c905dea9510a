"""Which key-store records a keyring may trust for new values, and which one is current.

Anyone who can write key-store rows and call KMS ``Encrypt`` can add a well-formed data key of
their own choosing: key commitment stops them replacing a key, not adding one. So every record a
keyring may *encrypt or index under* carries a MAC under a key derived from the keyring's anchor,
a random secret wrapped under the master key that only ``kms:Decrypt`` holders can open. A record
without a valid MAC (planted, edited, written by 0.1 or by a write-only producer) still decrypts
the values that name it, but is never chosen for new ones.

Among authenticated, active records of one purpose the current one is the one of highest
``generation`` (each new key takes the highest generation of its purpose plus one), never the
newest ``created_at``: a clock that runs ahead cannot pin a key forever. Records dated beyond the
clock-skew allowance are never chosen. Layout of the MAC input: docs/format.md, "Anchor and MAC".
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fieldcrypt import _aead
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status

MAC_LABEL = b"fieldcrypt/v1/key-record"
MAC_KEY_INFO = b"fieldcrypt/v1/key-record-mac"
ANCHOR_SLOT_LABEL = b"fieldcrypt/v1/anchor-slot"
MAC_BYTES = 32
EXHAUSTED = "exhausted by this process"


def anchor_slot(keyring: str) -> str:
    """The one key id an anchor of ``keyring`` may have (so two processes creating it collide)."""
    return _aead.hmac_sha256(ANCHOR_SLOT_LABEL, keyring.encode("utf-8"))[:20].hex()


def mac_key(anchor_secret: bytes) -> bytes:
    """The record-authentication key: HKDF-SHA256 of the anchor secret."""
    return _aead.derive_key(anchor_secret, MAC_KEY_INFO)


def _field(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">H", len(data)) + data


def canonical_time(moment: datetime) -> str:
    """``created_at`` as the MAC covers it: ISO 8601 in UTC with microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def mac_input(record: DataKeyRecord) -> bytes:
    """The bytes the MAC covers: what the record *is*, not its status or wraps (which key
    administration changes: retire, destroy, rewrap)."""
    if record.generation is None or not 0 <= record.generation < 2**63:
        raise ValueError("only a record with a generation in [0, 2**63) can be authenticated")
    return (
        MAC_LABEL
        + _field(record.keyring)
        + _field(record.key_id)
        + _field(record.purpose.value)
        + struct.pack(">Q", record.generation)
        + _field(canonical_time(record.created_at))
    )


def sign(record: DataKeyRecord, key: bytes) -> DataKeyRecord:
    """``record`` with its MAC under ``key`` (from :func:`mac_key`)."""
    return record.evolve(mac=_aead.hmac_sha256(key, mac_input(record)))


def authentic(record: DataKeyRecord, key: bytes) -> bool:
    """True when ``record`` carries a valid MAC under ``key``."""
    if record.mac is None or record.generation is None or not 0 <= record.generation < 2**63:
        return False
    return _aead.constant_time_equal(record.mac, _aead.hmac_sha256(key, mac_input(record)))


@dataclass
class Choice:
    """The outcome of looking at one purpose's records: the usable ones (current last), and the
    ones refused for new values with the reason (for logs, ``keys list`` and ``status``)."""

    usable: list[DataKeyRecord] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    next_generation: int = 1

    @property
    def current(self) -> DataKeyRecord | None:
        return self.usable[-1] if self.usable else None


def choose(
    records: Iterable[DataKeyRecord],
    purpose: Purpose,
    key: bytes | None,
    *,
    now: datetime,
    clock_skew: timedelta,
    exclude: frozenset[str] = frozenset(),
) -> Choice:
    """Sort ``purpose``'s active records into usable (ordered by generation) and refused.

    ``key`` is the MAC key (None when the keyring has no anchor: nothing is usable then).
    ``exclude`` holds keys this process must not return to (it exhausted their budget).
    """
    choice = Choice()
    highest = 0
    taken: set[int] = set()
    for record in records:
        if record.purpose is not purpose:
            continue
        if record.generation is not None:
            taken.add(record.generation)
        trusted = key is not None and authentic(record, key)
        if trusted and record.generation is not None:
            highest = max(highest, record.generation)
        if record.status is not Status.ACTIVE:
            continue
        if not trusted:
            choice.refused[record.key_id] = "unauthenticated"
        elif record.created_at > now + clock_skew:
            choice.refused[record.key_id] = "dated in the future"
        elif record.key_id in exclude:
            choice.refused[record.key_id] = EXHAUSTED
        else:
            choice.usable.append(record)
    choice.usable.sort(key=lambda r: (r.generation or 0, r.key_id))
    # The next free generation above the highest authenticated one: a row planted at that number
    # (the unique constraint would refuse ours) is stepped over, never allowed to block rotation.
    choice.next_generation = highest + 1
    while choice.next_generation in taken:
        choice.next_generation += 1
    return choice
