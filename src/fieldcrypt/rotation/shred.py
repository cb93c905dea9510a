"""Crypto-shredding that reaches backups: destroy a data key, then take every master key that ever
wrapped it out of service.

``destroy`` alone erases the data key's wrapped copies in the live key store only. Every backup,
snapshot or replica of the key store taken before still holds them, and the master key that
wrapped them still opens them. The one thing a backup cannot keep is the master key itself (it
never leaves KMS), so ``shred``:

1. wraps every surviving data key of the keyring under a new master key too (KMS ``ReEncrypt``
   where possible; a failure here loses nothing);
2. destroys the data key (erases its copies; status destroyed);
3. removes every surviving key's copies under any other master key;
4. reports the old master keys, which the operator then retires: ``aws kms schedule-key-deletion``
   (KMS refuses every use of the key from then on; deletion is final once the waiting period of 7
   to 30 days ends, and can be cancelled until then), or, for a local master key, deleting the key
   file and every copy of it.

Every step is idempotent, so a run that failed part-way is simply run again. Until step 4, a
pre-shred backup of the key store still opens with the old master key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.keys.record import Status
from fieldcrypt.rotation import admin


@dataclass
class ShredReport:
    keyring: str
    key_id: str
    new_master_key: str
    retire_master_keys: list[str] = field(default_factory=list)  # every one must go (step 4)
    rewrapped: int = 0
    removed_copies: int = 0
    was_destroyed_before: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def shred(
    keyring: Keyring,
    key_id: str,
    new_master_key: MasterKey,
    *,
    before_call: Callable[[], None] | None = None,
) -> ShredReport:
    """Destroy ``key_id`` and move every other data key of ``keyring`` to ``new_master_key`` only.

    The keyring's configured master keys are the source of the rewrap. Afterwards, configure the
    applications with ``new_master_key`` and retire every key in ``retire_master_keys``: only then
    are pre-shred backups unreadable. A key already destroyed (by ``destroy``, or by an earlier
    run) is accepted, so the backup half can be completed.

    Raises:
        ConfigurationError: no such data key in the keyring, or ``new_master_key`` holds a copy of
            it (backups keep that copy, so it must not survive the shred).
        KeyAccessError: a master key was refused (nothing is destroyed if the new one is).
    """
    record = keyring.key_store.get(key_id)
    if record is None or record.keyring != keyring.name:
        raise ConfigurationError(
            f"keyring {keyring.name!r} has no data key {key_id!r} (see `fieldcrypt keys list`)"
        )
    if any(new_master_key.can_unwrap(wrapped_under) for wrapped_under in record.wraps):
        raise ConfigurationError(
            f"data key {key_id} is wrapped under {new_master_key.key_id}, and backups keep that copy: "
            "shred to a master key that never wrapped it (a new KMS key, or a new local key)"
        )
    old = {
        wrapped_under
        for r in keyring.records()
        for wrapped_under in r.wraps
        if not new_master_key.can_unwrap(wrapped_under)
    }
    report = ShredReport(keyring.name, key_id, new_master_key.key_id, sorted(old))
    # 1: the shredded key is skipped, so no backup taken during the run holds it under the new key.
    added = admin.rewrap(keyring, new_master_key, before_call=before_call, skip={key_id})
    report.rewrapped = added.rewrapped
    if record.status is Status.DESTROYED:
        report.was_destroyed_before = True
    else:
        admin.destroy(keyring, key_id)  # 2
    removed = admin.rewrap(keyring, new_master_key, remove_old=True)  # 3: no KMS call, copies only
    report.removed_copies = removed.removed_copies
    return report


def retirement_steps(report: ShredReport, sources: dict[str, str]) -> list[str]:
    """What the operator does next, in order: switch the applications, then retire old keys.

    ``sources`` maps a master key id to how it is configured (``file:PATH`` for a local key).
    """
    steps = [f"configure every application with master key {report.new_master_key} (and no other)"]
    for key_id in report.retire_master_keys:
        if key_id.startswith("arn:"):
            steps.append(
                f"aws kms schedule-key-deletion --key-id {key_id} --pending-window-in-days 7"
                " (for a multi-region key: every replica first, then the primary)"
            )
        else:
            where = sources.get(key_id, "")
            path = where[len("file:") :] if where.startswith("file:") else None
            steps.append(
                f"delete local master key {key_id}"
                + (f" ({path})" if path else "")
                + " and every copy of it, backups of the key file included"
            )
    return steps
