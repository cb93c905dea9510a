"""``status`` and ``verify`` on TABLE.COLUMN, and ``status`` on ``dynamodb:TABLE.ATTRIBUTE``.

Both only read. SQL ``status`` reads value headers and the key store (no KMS call, no
plaintext); DynamoDB ``status`` also decrypts each value to find undecryptable items; ``verify``
decrypts every value and lists the rows that fail. Status prints one schema and exits the same
way for both kinds of target.
"""

from __future__ import annotations

import concurrent.futures
import functools

import click

from fieldcrypt.cli.columns import (
    SEGMENT_OPTION,
    WORKERS_OPTION,
    _column_options,
    _dynamodb,
    _spec,
    dynamodb_tenant,
    job_options,
)
from fieldcrypt.cli.context import State
from fieldcrypt.cli.output import EXIT_INCOMPLETE, Meter
from fieldcrypt.reports import ColumnStatus
from fieldcrypt.rotation import inspect
from fieldcrypt.rotation.spec import ColumnSpec
from fieldcrypt.rotation.table import WHOLE, Segment
from fieldcrypt.tenant_rows import TenantRows


@click.command()
@_column_options
@SEGMENT_OPTION
@WORKERS_OPTION
@click.pass_obj
def status(
    state: State,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    tenant_column: str | None,
    segment: str | None,
    workers: int,
) -> None:
    """Values per data key and master key, plaintext left, undecryptable values, data keys no
    value uses. TARGET is TABLE.COLUMN (SQL) or dynamodb:TABLE.ATTRIBUTE. With --tenant, one
    tenant's rows against its keyring.

    Exit code 1 when work remains: plaintext, values not on the current key, or undecryptable ones.
    """
    job = job_options(state, segment, workers)
    found = column_status(state, target, codec, storage, bind_row, job.segment, job.workers, tenant_column)
    state.out.result(job.tag(found.as_dict()), lambda: _say_status(state, found))
    if found.work_remains:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


def column_status(
    state: State,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    segment: Segment = WHOLE,
    workers: int = 1,
    tenant_column: str | None = None,
) -> ColumnStatus:
    """The status of one target, SQL or DynamoDB, read on ``workers`` threads (one tenant's rows
    with --tenant)."""
    with state.out.progress(f"status {target} (segment {segment})") as meter:
        if target.startswith("dynamodb:"):
            tenant = dynamodb_tenant(state, target, tenant_column)  # refused before any key is built
            return _dynamodb().run_status(  # type: ignore[no-any-return]
                target,
                keyring=state.keyring,
                endpoint_url=state.settings.dynamodb_endpoint_url,
                region=state.settings.region,
                segment=(segment.index, segment.count),
                workers=workers,
                progress=meter,
                tenant=tenant,
            )
        spec, tenant = _spec(state, target, codec, storage, bind_row, tenant_column)
        return _sql_status(state, spec, segment, workers, meter, tenant)


def _sql_status(
    state: State, spec: ColumnSpec, segment: Segment, workers: int, meter: Meter, tenant: TenantRows | None
) -> ColumnStatus:
    seen: dict[int, tuple[int, int | None]] = {}

    def progress(n: int, done: int, total: int | None) -> None:
        seen[n] = (done, total)
        meter(sum(d for d, _ in seen.values()), sum(t or 0 for _, t in seen.values()) or None)

    parts = segment.split(workers)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(
                inspect.status,
                state.engine,
                spec,
                segment=s,
                progress=functools.partial(progress, n),
                tenant=tenant,
            )
            for n, s in enumerate(parts)
        ]
        results = [f.result() for f in futures]
    found = results[0]
    for other in results[1:]:
        found.merge(other)
    return found


def _say_status(state: State, found: ColumnStatus) -> None:
    state.out.say(
        f"{found.target}: {found.rows} rows, {found.encrypted} encrypted, "
        f"{found.plaintext} plaintext, {found.null} NULL; current data key {found.current_key}, "
        f"{found.not_current} values on older keys"
    )
    state.out.table(
        "values per data key", ["data key", "values"], [[k, n] for k, n in found.by_data_key.items()]
    )
    state.out.table(
        "values per master key", ["master key", "values"], [[k, n] for k, n in found.by_master_key.items()]
    )
    if found.per_subject:
        state.out.say(
            f"per subject: {found.subject_keyed} values under their subjects' own keys, "
            f"{found.shredded_subject} of shredded subjects (erased: not work left, not damage)"
        )
        _say_rows(state, "of shredded subjects", found.shredded_rows)
    checked = f", {found.failed} failed to decrypt" if found.verified else ""
    state.out.say(
        f"undecryptable: {found.destroyed} under destroyed keys, {found.unknown_key} under unknown keys"
        f"{checked}"
    )
    _say_rows(state, "plaintext (never encrypted, or written back in clear)", found.plaintext_rows)
    _say_rows(state, "shaped like ciphertext but naming no data key of this keyring", found.unknown_key_rows)
    for row in found.undecryptable_rows[:20]:
        state.out.say(f"  row {row}")
    if found.unused_data_keys:
        state.out.say(
            f"data keys with no value here: {', '.join(found.unused_data_keys)} "
            "(`fieldcrypt keys retire --unused` with every column of the keyring retires them)"
        )
    for damaged in found.damaged_key_rows:
        state.out.say(f"unreadable key-store row {damaged['key_id']}: {damaged['reason']} (skipped)")


def _say_rows(state: State, what: str, rows: list[str]) -> None:
    if rows:
        state.out.say(f"rows {what}: {', '.join(rows[:50])}{' ...' if len(rows) > 50 else ''}")


@click.command()
@_column_options
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.pass_obj
def verify(
    state: State,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    tenant_column: str | None,
    batch_size: int,
) -> None:
    """Decrypt every value; list the rows that fail. Exit code 1 if any fails or is plaintext.

    TARGET is TABLE.COLUMN (SQL) or dynamodb:TABLE.ATTRIBUTE. With --tenant, one tenant's rows.
    """
    if target.startswith("dynamodb:"):
        _verify_dynamodb(state, target, tenant_column)
        return
    spec, tenant = _spec(state, target, codec, storage, bind_row, tenant_column)
    with state.out.progress(f"verify {target}") as meter:
        result = inspect.verify(state.engine, spec, batch_size=batch_size, progress=meter, tenant=tenant)
    data = job_options(state, None, 1, tenant).tag(result.as_dict())

    def human() -> None:
        shredded = f", {result.shredded_subject} of shredded subjects" if result.shredded_subject else ""
        state.out.say(
            f"{result.table}.{result.column}: {result.decrypted} decrypted, {result.failed} failed, "
            f"{result.plaintext} plaintext, {result.null} NULL{shredded}"
        )
        for row, error in result.failures[:50]:
            state.out.say(f"  row {row}: {error}")
        _say_rows(state, "plaintext", result.plaintext_rows)
        _say_rows(state, "of shredded subjects (erased on purpose)", result.shredded_rows)

    state.out.result(data, human)
    if not result.ok:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


def _verify_dynamodb(state: State, target: str, tenant_column: str | None) -> None:
    """verify of a DynamoDB attribute: its status decrypts every value; reported as verify does."""
    found = column_status(state, target, None, None, None, tenant_column=tenant_column)
    failed = found.failed + found.destroyed + found.unknown_key
    data = {
        "table": found.table,
        "column": found.column,
        "rows": found.rows,
        "decrypted": found.encrypted - failed,
        "null": found.null,
        "plaintext": found.plaintext,
        "failed": failed,
        "failed_rows": found.undecryptable_rows,
        "plaintext_rows": found.plaintext_rows,
        "ok": failed == 0 and found.plaintext == 0,
    } | ({} if state.settings.tenant is None else {"tenant": state.keyring.tenant})

    def human() -> None:
        state.out.say(
            f"{target}: {data['decrypted']} decrypted, {failed} failed, {found.plaintext} plaintext, "
            f"{found.null} absent"
        )
        for row in found.undecryptable_rows[:50]:
            state.out.say(f"  item {row}")
        _say_rows(state, "plaintext", found.plaintext_rows)

    state.out.result(data, human)
    if not data["ok"]:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)
