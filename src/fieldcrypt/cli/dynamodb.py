"""What the ``fieldcrypt`` CLI's ``encrypt-column``, ``reencrypt``, ``rebind`` and ``status``
commands call for ``dynamodb:`` targets.

No click here: the CLI parses options and prints; these functions do the work and return
JSON-serialisable results (or a :class:`~fieldcrypt.reports.ColumnStatus`), so they are tested
directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fieldcrypt.dynamodb.adopt import Adopter
from fieldcrypt.dynamodb.item import EncryptedField
from fieldcrypt.dynamodb.rebind import Rebinder
from fieldcrypt.dynamodb.reencrypt import Reencryptor
from fieldcrypt.dynamodb.status import table_status
from fieldcrypt.dynamodb.tables import check_segment, parse_target
from fieldcrypt.keyring import Keyring
from fieldcrypt.reports import ColumnStatus
from fieldcrypt.stores.dynamodb import dynamodb_client
from fieldcrypt.tenant_rows import TenantRows


def run_reencrypt(
    target: str,
    *,
    keyring: Keyring,
    segment: tuple[int, int] | None,
    batch_size: int,
    max_kms_calls_per_second: float | None,
    dry_run: bool,
    endpoint_url: str | None,
    region: str | None,
    checkpoint_dir: str | None,
    progress: Callable[[int], None] | None,
    workers: int = 1,
    tenant: TenantRows | None = None,
    resumed: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Re-encrypt ``dynamodb:TABLE.ATTRIBUTE`` onto the keyring's current data key.

    ``segment=(i, n)`` runs only segment ``i`` of ``n`` (0-based, as DynamoDB numbers them), so
    ``n`` jobs can share a table; ``None`` runs the whole table as one segment. ``workers``
    threads split this job's segment further: DynamoDB segments ``i, i+n, ...`` of ``n*workers``
    (so the same ``workers`` must be given to resume from checkpoints). ``tenant``: only that
    tenant's items, under its keyring (``keyring``). ``resumed``: told once how many items
    earlier runs scanned, before ``progress`` counts on from there.

    Raises:
        ConfigurationError: a malformed target, an out-of-range segment, a missing table.
        KeyAccessError: KMS refused or is unreachable (progress so far is checkpointed).
    """
    return _run_job(
        Reencryptor,
        "reencrypt",
        target,
        segment,
        workers,
        endpoint_url,
        region,
        keyring=keyring,
        batch_size=batch_size,
        max_kms_calls_per_second=max_kms_calls_per_second,
        dry_run=dry_run,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        resumed=resumed,
        tenant=tenant,
    )


def run_rebind(
    target: str,
    from_: str,
    *,
    segment: tuple[int, int] | None,
    workers: int = 1,
    endpoint_url: str | None,
    region: str | None,
    **options: Any,
) -> dict[str, Any]:
    """Re-bind ``dynamodb:TABLE.ATTRIBUTE`` from ``OLD_TABLE.OLD_ATTRIBUTE`` (after a table copy or
    an attribute rename): every value still bound to the old names is encrypted again at its own
    place (and moved to the new attribute name). ``options`` as :func:`run_reencrypt`'s.

    Raises:
        ConfigurationError: a malformed target or ``from_``, an out-of-range segment, a missing table.
        KeyAccessError: KMS refused or is unreachable (progress so far is checkpointed).
    """
    result = _run_job(
        Rebinder,
        "rebind",
        target,
        segment,
        workers,
        endpoint_url,
        region,
        from_=parse_target(from_),
        **options,
    )
    return result | {"from": from_}


def run_encrypt(
    target: str,
    *,
    keyring: Keyring,
    kind: str = "S",
    index_attribute: str | None = None,
    segment: tuple[int, int] | None,
    workers: int = 1,
    endpoint_url: str | None,
    region: str | None,
    **options: Any,
) -> dict[str, Any]:
    """Encrypt the plaintext values of ``dynamodb:TABLE.ATTRIBUTE`` in place (adoption), as an
    ``EncryptedField(kind, keyring=keyring, index_attribute=index_attribute)`` writes them; the
    items left undone are listed under ``failures`` (by key). ``options`` as :func:`run_reencrypt`'s.

    Raises:
        ConfigurationError: a malformed target, an out-of-range segment, a missing table, a
            searchable attribute whose recorded index options differ (e.g. it has a normalizer).
        KeyAccessError: KMS refused or is unreachable (progress so far is checkpointed).
    """
    field = EncryptedField(kind, keyring=keyring, index_attribute=index_attribute)
    return _run_job(
        Adopter, "encrypt", target, segment, workers, endpoint_url, region, field=field, **options
    )


def _run_job(
    job_class: type[Reencryptor],
    action: str,
    target: str,
    segment: tuple[int, int] | None,
    workers: int,
    endpoint_url: str | None,
    region: str | None,
    **options: Any,
) -> dict[str, Any]:
    """Run this process's share of a segmented job: segment ``i`` of ``n``, split over ``workers``
    threads as DynamoDB segments ``i, i+n, ...`` of ``n*workers``."""
    table, attribute = parse_target(target)
    index, total = segment if segment is not None else (0, 1)
    check_segment(index, total)
    client = dynamodb_client(region, endpoint_url)
    job = job_class(client, table, attribute, total_segments=total * workers, **options)
    counts: dict[str, Any] = job.run([index + total * w for w in range(workers)], workers=workers)
    tenant: TenantRows | None = options.get("tenant")
    scope = {} if tenant is None else {"tenant": tenant.tenant}
    failures = [{"row": row, "error": error} for row, error in job.failures]
    return (
        {
            "action": action,
            "target": target,
            "segment": f"{index}/{total}",
            "dry_run": options["dry_run"],
        }
        | scope
        | counts
        | {"failures": failures}
    )


def run_status(
    target: str,
    *,
    keyring: Keyring,
    endpoint_url: str | None,
    region: str | None,
    segment: tuple[int, int] = (0, 1),
    workers: int = 1,
    progress: Callable[[int, int | None], None] | None = None,
    tenant: TenantRows | None = None,
) -> ColumnStatus:
    """Counts for ``dynamodb:TABLE.ATTRIBUTE``: values per data key and master key, plaintext
    left, undecryptable items (listed by key). Reads only. ``tenant``: that tenant's items only."""
    table, attribute = parse_target(target)
    return table_status(
        dynamodb_client(region, endpoint_url),
        table,
        attribute,
        keyring=keyring,
        segment=segment,
        workers=workers,
        progress=progress,
        tenant=tenant,
    )
