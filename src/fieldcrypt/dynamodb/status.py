"""What an encrypted DynamoDB attribute holds: values per data key and master key, what is left.

Reads only (a consistent view is not needed for counts); never writes, not even a data key.
Every value is decrypted unless ``verify=False``, so undecryptable items are found and listed
(by key, never by value).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from fieldcrypt import format as fmt
from fieldcrypt.dynamodb.tables import EncryptedColumn
from fieldcrypt.errors import DecryptionError, KeyAccessError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.record import DataKeyRecord, Purpose
from fieldcrypt.keys.resolve import newest_active

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LISTED = 100  # undecryptable items listed by key; the count covers them all


def table_status(
    client: DynamoDBClient, table: str, attribute: str, *, keyring: Keyring, verify: bool = True
) -> dict[str, Any]:
    """JSON-serialisable counts for ``table.attribute`` (see docs/dynamodb.md, "Status")."""
    column = EncryptedColumn.open(client, table, attribute)
    records = {r.key_id: r for r in keyring.records(Purpose.ENCRYPTION)}
    current = newest_active(records.values())
    counts: Counter[str] = Counter()
    per_key: Counter[str] = Counter()
    bad: list[str] = []
    for items, _ in column.pages(0, 1, None, 1000):
        for item in items:
            counts["items"] += 1
            stored = item.get(attribute)
            if stored is None:
                counts["absent"] += 1
                continue
            if "B" not in stored:
                counts["plaintext"] += 1
                continue
            blob = bytes(stored["B"])
            place = column.place(item)
            try:
                key_id = keyring.key_id_of(blob)
            except (fmt.MalformedCiphertext, fmt.UnknownVersion):
                key_id = None
            if key_id is not None:
                per_key[key_id] += 1
            if key_id is None or (verify and not _opens(keyring, blob, place)):
                counts["undecryptable"] += 1
                if len(bad) < LISTED:
                    bad.append(str(place.describe_row()))
    encrypted = sum(per_key.values())
    return {
        "target": f"dynamodb:{table}.{attribute}",
        "keyring": keyring.name,
        "items": counts["items"],
        "encrypted": encrypted,
        "absent": counts["absent"],
        "plaintext": counts["plaintext"],
        "undecryptable": counts["undecryptable"],
        "undecryptable_items": bad,
        "current_data_key": current,
        "to_reencrypt": sum(n for key_id, n in per_key.items() if key_id != current),
        "data_keys": {k: _describe(records.get(k), n) for k, n in sorted(per_key.items())},
        "master_keys": dict(sorted(_per_master_key(records, per_key).items())),
        "verified": verify,
    }


def _opens(keyring: Keyring, blob: bytes, place: Any) -> bool:
    try:
        keyring.decrypt(blob, place)
    except KeyAccessError:
        raise  # KMS trouble is not a property of the value: stop and say so
    except DecryptionError:
        return False
    return True


def _describe(record: DataKeyRecord | None, values: int) -> dict[str, Any]:
    if record is None:
        return {"values": values, "status": "missing", "master_keys": []}
    return {"values": values, "status": record.status.value, "master_keys": sorted(record.wraps)}


def _per_master_key(records: dict[str, DataKeyRecord], per_key: Counter[str]) -> Counter[str]:
    # A data key wrapped under two master keys (mid-rewrap, or a second region) counts under both.
    out: Counter[str] = Counter()
    for key_id, n in per_key.items():
        record = records.get(key_id)
        for master in sorted(record.wraps) if record is not None else ["(missing data key)"]:
            out[master] += n
    return out
