"""The data-key record kept in a key store: metadata and wrapped copies, never a plaintext key."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType


class Purpose(enum.StrEnum):
    ENCRYPTION = "encryption"
    BLIND_INDEX = "blind_index"
    # The keyring's anchor: a random secret (never used on values) from which the key that
    # authenticates every other record is derived (fieldcrypt.keys.trust, docs/format.md).
    ANCHOR = "anchor"
    # Wraps the keyring's subject keys locally (fieldcrypt.subjects): KMS-wrapped, authenticated.
    SUBJECT_WRAP = "subject_wrap"
    # One subject's own key, wrapped under a SUBJECT_WRAP key, filed under "<keyring>#subjects".
    SUBJECT = "subject"


class Status(enum.StrEnum):
    ACTIVE = "active"  # may be chosen for new values (the authenticated one of highest generation)
    RETIRED = "retired"  # still decrypts; never chosen for new values
    DESTROYED = "destroyed"  # wrapped copies erased: values under it are unrecoverable


@dataclass(frozen=True)
class DataKeyRecord:
    """One data key: id (hex of the committing key id), owner keyring, and its wrapped copies.

    ``wraps`` maps a master key id (full KMS ARN or ``local:<fingerprint>``) to the key wrapped
    under it. ``revision`` increases on every update so concurrent rewraps cannot silently
    overwrite each other. ``generation`` orders a keyring's keys of one purpose (a rotation
    always makes a higher one) and ``mac`` authenticates the record under the keyring's anchor;
    both are ``None`` in records written by fieldcrypt 0.1 (and in write-only producers' records),
    which still decrypt but are never chosen for new values.
    """

    key_id: str
    keyring: str
    purpose: Purpose
    status: Status
    created_at: datetime
    wraps: Mapping[str, bytes] = field(default_factory=dict)
    revision: int = 0
    generation: int | None = None
    mac: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "wraps", MappingProxyType(dict(self.wraps)))
        if self.created_at.tzinfo is None:
            object.__setattr__(self, "created_at", self.created_at.replace(tzinfo=UTC))

    def evolve(self, **changes: object) -> DataKeyRecord:
        return replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        # Wrapped keys are not secret, but they are noise in logs: show only which master keys.
        return (
            f"DataKeyRecord(key_id={self.key_id!r}, keyring={self.keyring!r}, "
            f"purpose={self.purpose.value!r}, status={self.status.value!r}, "
            f"created_at={self.created_at.isoformat()!r}, generation={self.generation!r}, "
            f"wrapped_under={sorted(self.wraps)!r})"
        )


def kms_context(record_keyring: str, key_id: str, purpose: Purpose) -> dict[str, str]:
    """The encryption context of every wrap: names only, since CloudTrail logs it in clear."""
    return {
        "fieldcrypt:keyring": record_keyring,
        "fieldcrypt:data-key-id": key_id,
        "fieldcrypt:purpose": purpose.value,
    }


def utcnow() -> datetime:
    return datetime.now(UTC)
