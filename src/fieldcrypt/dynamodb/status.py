"""What an encrypted DynamoDB attribute holds: values per data key and master key, what is left.

Reads only (a consistent view is not needed for counts); never writes, not even a data key.
Every value is decrypted unless ``verify=False``, so undecryptable items are found and listed
(by key, never by value). The result is the same :class:`~fieldcrypt.reports.ColumnStatus` as
SQL status: one schema, one exit-code contract.

The scan runs in parallel-scan segments on worker threads (``workers``), and may be one segment
``i/N`` of a job split across processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fieldcrypt import format as fmt
from fieldcrypt.dynamodb import values
from fieldcrypt.dynamodb.tables import EncryptedColumn, check_segment
from fieldcrypt.errors import DamagedCiphertext, DecryptionError, KeyAccessError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.record import DataKeyRecord, Purpose
from fieldcrypt.reports import ColumnStatus
from fieldcrypt.tenant_rows import TenantRows

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PAGE = 1000


def table_status(
    client: DynamoDBClient,
    table: str,
    attribute: str,
    *,
    keyring: Keyring,
    verify: bool = True,
    segment: tuple[int, int] = (0, 1),
    workers: int = 1,
    progress: Callable[[int, int | None], None] | None = None,
    tenant: TenantRows | None = None,
    kind: str = "B",
) -> ColumnStatus:
    """Counts for ``table.attribute`` (segment ``i/N`` of the table; ``workers`` threads each
    scan one DynamoDB segment of it). ``progress(items read, None)`` after every page. With
    ``tenant``, that tenant's items only, against its keyring (``keyring``).

    ``kind``: the field's DynamoDB type, which tells a stored value's plaintext from ciphertext
    by adoption's rule (:func:`.values.ciphertext_in`). The default, ``"B"``, judges a binary
    value by its shape (a v1 ciphertext or not), which suits every kind: an attribute not yet
    adopted may hold binary plaintext. Given another kind, every binary value is a ciphertext.
    """
    index, count = segment
    check_segment(index, count)
    check_segment(0, count * workers)
    column = EncryptedColumn.open(client, table, attribute, tenant=tenant)
    records = {r.key_id: r for r in keyring.records(Purpose.ENCRYPTION)}
    current = keyring.chosen_key_id()  # the keyring's authenticated choice, never a new key
    read = [0]
    lock = threading.Lock()

    def scan(part: int) -> ColumnStatus:
        found = ColumnStatus(table, attribute, f"dynamodb:{table}.{attribute}", current_key=current)
        found.verified = verify
        for items, _ in column.pages(part, count * workers, None, PAGE):
            for item in items:
                _tally(found, column, item, keyring, records, verify, kind)
            with lock:  # held while reporting, so reports never go backwards
                read[0] += len(items)
                if progress is not None:
                    progress(read[0], None)
        return found

    # W workers split segment i/N into W: DynamoDB segments i, i+N, ... of N*W.
    parts = [index + count * w for w in range(workers)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fieldcrypt-status") as pool:
        results = list(pool.map(scan, parts))
    total = results[0]
    for other in results[1:]:
        total.merge(other)
    total.note_unused(list(records.values()))
    total.damaged_key_rows = [
        {"key_id": d.key_id, "reason": d.reason} for d in keyring.key_store.damaged(keyring.name)
    ]
    return total


def _tally(
    found: ColumnStatus,
    column: EncryptedColumn,
    item: dict[str, Any],
    keyring: Keyring,
    records: dict[str, DataKeyRecord],
    verify: bool,
    kind: str,
) -> None:
    found.rows += 1
    stored = item.get(column.attribute)
    if stored is None or stored == {"NULL": True}:  # adoption leaves a NULL as it is: nothing to do
        found.null += 1
        return
    place = column.place(item)
    try:
        blob = values.ciphertext_in(kind, stored)  # adoption's rule: both agree on what is left
        if blob is None:
            found.plaintext += 1
            found.list_plaintext(place.describe_row())
            return
        key_id = keyring.key_id_of(blob)
    except (DamagedCiphertext, fmt.MalformedCiphertext, fmt.UnknownVersion):
        found.failed += 1
        found.list_row(place.describe_row())
        return
    if (
        found.count(key_id, records.get(key_id), place.describe_row())
        and verify
        and not _opens(keyring, blob, place)
    ):
        found.failed += 1
        found.list_row(place.describe_row())


def _opens(keyring: Keyring, blob: bytes, place: Any) -> bool:
    try:
        keyring.decrypt(blob, place)
    except KeyAccessError:
        raise  # KMS trouble is not a property of the value: stop and say so
    except DecryptionError:
        return False
    return True
