"""The batch engine: walk a table by primary key and rewrite one column, batch by batch.

Properties (tests/rotation show each one):
- bounded: at most two keyset pages of ``batch_size`` rows in memory, one commit per batch;
- pipelined: with an engine (not SQLite), the next page is read and computed on a second thread
  and connection while this page's write runs, so the cryptography overlaps the database's work;
- online: write-back is compare-and-set (writer.py), so concurrent application writes survive;
- idempotent: values already in the target state are skipped without decrypting;
- resumable: a kill -9 loses at most the uncommitted batch; a checkpoint file (optional) lets
  the rerun start where the last commit ended, and without it the rerun rescans cheaply;
- throttling-tolerant: a batch that hits KMS throttling after botocore's own retries is computed
  again after an exponential back-off, and KMS calls can be capped with a token bucket.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from fieldcrypt import metrics
from fieldcrypt.errors import DecryptionError, KeyAccessError, ShreddedSubject
from fieldcrypt.failures import note_failure
from fieldcrypt.reports import Report as _Report
from fieldcrypt.rotation.actions import ACTIONS, Action
from fieldcrypt.rotation.checkpoint import Checkpoint
from fieldcrypt.rotation.rowkeys import RowKeys
from fieldcrypt.rotation.spec import ColumnSpec
from fieldcrypt.rotation.table import Segment, Target
from fieldcrypt.rotation.writer import Change, write_batch
from fieldcrypt.tenant_rows import TenantRows

THROTTLED = frozenset({"ThrottlingException", "LimitExceededException", "KMSInternalException"})
CONFLICT_PASSES = 3


@dataclass
class Report(_Report):
    """Counts of one run (also passed, as it grows, to the progress callback).

    ``resumed_rows`` counts the rows of the segment a checkpoint says earlier runs already did;
    ``scanned`` counts this run's rows, so ``resumed_rows + scanned`` is the position in ``total``.
    ``shredded`` counts values of shredded subjects left as they are (erased, not failed).
    """

    action: str
    table: str
    column: str
    segment: str
    dry_run: bool
    total: int = 0
    scanned: int = 0
    to_change: int = 0
    written: int = 0
    conflicts: int = 0
    failed: int = 0
    shredded: int = 0
    retries: int = 0
    batches: int = 0
    resumed_after: list[Any] | None = None
    resumed_rows: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    DERIVED = (("complete", "complete"),)

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.conflicts == 0


Progress = Callable[[Report], None]


def run(
    bind: sa.Engine | sa.Connection,
    spec: ColumnSpec,
    action: str,
    *,
    batch_size: int = 1000,
    segment: Segment | str = "0/1",
    max_kms_calls_per_second: float | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    checkpoint_dir: str | None = None,
    max_retries: int = 8,
    retry_base_seconds: float = 0.5,
    tenant: TenantRows | None = None,
) -> Report:
    """Run ``action`` ("encrypt", "reencrypt", "decrypt" or "reindex") over ``spec``'s column.

    ``tenant`` limits the run to one tenant's rows; ``spec``'s keyring is then that tenant's
    (``TenantKeyrings.keyring_for``), and no other tenant's row is read or written. Without it, a
    per-tenant spec (``tenant_column``) uses each row's tenant's keyring, and a per-subject spec
    (``subject_column``) each row's subject's key (fieldcrypt.rotation.rowkeys).

    ``bind`` is an engine (each batch in its own transaction) or a connection (Alembic's, inside
    ``autocommit_block()``: each statement commits by itself, which compare-and-set makes safe).

    Raises:
        ConfigurationError: no such table/column, no primary key, bad segment or batch size.
        KeyAccessError: KMS still refused after ``max_retries`` back-offs (nothing half-written).
    """
    from fieldcrypt.errors import ConfigurationError

    if batch_size < 1:
        raise ConfigurationError("batch_size must be at least 1")
    segment = Segment.parse(segment) if isinstance(segment, str) else segment
    keys = RowKeys(spec, max_kms_calls_per_second)
    worker = ACTIONS[action](spec, keys)
    report = Report(action, spec.table, spec.column, str(segment), dry_run)
    started = time.monotonic()
    with _transaction(bind) as conn:
        index = spec.index_column if worker.writes_index else None
        target = Target.reflect(conn, spec.table, spec.column, index, tenant, keys.columns)
        report.total = target.count(conn, segment)
    _with_retries(lambda: worker.prepare(dry_run=dry_run), report, max_retries, retry_base_seconds)
    scope = "" if tenant is None else f".{tenant.slug}"
    checkpoint = Checkpoint(
        checkpoint_dir, f"{spec.table}.{spec.column}.{action}{scope}.{segment.index}of{segment.count}"
    )
    fingerprint = f"{action}:{','.join(sorted(getattr(worker, 'current', ())))}"
    after = None if dry_run else checkpoint.load(fingerprint)
    report.resumed_after = after
    if after is not None:
        with _transaction(bind) as conn:
            report.resumed_rows = target.count(conn, segment, upto=after)
    lock = threading.Lock()  # one page computed at a time: an Action is not assumed thread-safe

    def compute(after: list[Any] | None) -> Page:
        with lock:
            with _transaction(bind) as conn:
                rows = conn.execute(target.page(after, batch_size, segment)).all()
            if not rows:
                return rows, [], [], 0
            changes, failures, shredded = _with_retries(
                functools.partial(_changes, worker, target, rows), report, max_retries, retry_base_seconds
            )
            return rows, changes, failures, shredded

    ahead = _ahead(bind)
    try:
        pending = ahead.submit(compute, after)
        while True:
            rows, changes, failures, shredded = pending.result()
            if not rows:
                break
            following = list(rows[-1][: len(target.pk)])
            pending = ahead.submit(compute, following)  # the next page, while this one is written
            page_written = missed = 0
            for passes in range(CONFLICT_PASSES + 1):
                written = 0
                if changes and not dry_run:
                    with _transaction(bind) as conn:
                        written = write_batch(conn, target, changes)
                page_written += written
                missed = 0 if dry_run else len(changes) - written
                if not missed or passes == CONFLICT_PASSES:
                    break
                # Rows changed under us: read this page again; rows done are skipped.
                rows, changes, failures, shredded = compute(after)
                if not rows:
                    break
            if not rows:
                break  # the page's rows were all deleted meanwhile, and nothing follows them
            for pk, exc in failures:
                report.failed += 1
                note_failure(report.failures, target.row_key(pk), exc)
            if not dry_run:
                metrics.rows(action, spec.table, spec.column, processed=len(rows), failed=len(failures))
            report.batches += 1
            report.shredded += shredded
            report.scanned += len(rows)
            report.to_change += len(changes) if dry_run else page_written + missed
            report.written += page_written
            report.conflicts += missed
            after = list(rows[-1][: len(target.pk)])
            if after != following:  # a re-read page ended elsewhere: the read ahead starts wrong
                pending.result()
                pending = ahead.submit(compute, after)
            if not dry_run:
                checkpoint.save(fingerprint, tuple(after))
            if progress is not None:
                progress(report)
    finally:
        ahead.shutdown()
    if not dry_run:
        checkpoint.clear()
        # Whole column, nothing failed or left, and not resumed from a checkpoint (rows before
        # it were done by an earlier run, possibly under an older key); one tenant is not all.
        whole = segment.count == 1 and report.resumed_after is None and tenant is None
        worker.finish(report.complete and whole)
    report.seconds = time.monotonic() - started
    return report


# The rows read, their changes, their failures and how many values of shredded subjects they hold.
Page = tuple[Sequence[sa.Row[Any]], list[Change], list[tuple[tuple[Any, ...], Exception]], int]


class _Now:
    """The synchronous stand-in for an executor: the work runs when submitted."""

    def submit(self, work: Callable[[list[Any] | None], Page], after: list[Any] | None) -> Future[Page]:
        done: Future[Page] = Future()
        try:
            done.set_result(work(after))
        except BaseException as exc:  # handed to result(), as an executor's future does
            done.set_exception(exc)
        return done

    def shutdown(self) -> None:
        """Nothing runs in the background."""


def _ahead(bind: sa.Engine | sa.Connection) -> ThreadPoolExecutor | _Now:
    """Where the next page is read and computed: on a thread with a connection of its own, when
    ``bind`` is an engine; in line on a caller's connection (one connection is never shared
    between threads) and on SQLite (a reader would hold the lock the writer's commit waits on)."""
    if isinstance(bind, sa.Engine) and bind.dialect.name != "sqlite":
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fieldcrypt-rotation-read")
    return _Now()


def _changes(
    worker: Action, target: Target, rows: Sequence[sa.Row[Any]]
) -> tuple[list[Change], list[tuple[tuple[Any, ...], Exception]], int]:
    changes: list[Change] = []
    failures: list[tuple[tuple[Any, ...], Exception]] = []
    shredded = 0
    for row in rows:
        pk, stored, index, chosen = target.split(row)
        if not worker.needs_work(stored, index, chosen):
            continue
        try:
            new, new_index = worker.apply(target.row_key(pk), stored, index, chosen)
        except ShreddedSubject:
            shredded += 1  # erased on purpose: left as it is, counted, not a failure
            continue
        except (DecryptionError, ValueError, TypeError, ArithmeticError) as exc:
            # A value that cannot be read stays as it is and is listed; the run goes on, and the
            # CLI exits non-zero at the end (Report.failed).
            failures.append((pk, exc))
            continue
        if new == stored and (not worker.writes_index or _same(new_index, index)):
            continue
        changes.append(Change(pk, stored, new, new_index))
    return changes, failures, shredded


def _same(a: object, b: object) -> bool:
    return (bytes(a) if isinstance(a, memoryview | bytearray) else a) == (
        bytes(b) if isinstance(b, memoryview | bytearray) else b
    )


def _with_retries(compute: Callable[[], Any], report: Report, max_retries: int, base: float) -> Any:
    attempt = 0
    while True:
        try:
            return compute()
        except KeyAccessError as exc:
            if exc.code not in THROTTLED or attempt >= max_retries:
                raise
            attempt += 1
            report.retries += 1
            # Full jitter: concurrent segment jobs hitting the same quota spread out.
            time.sleep(random.uniform(0, base * 2 ** min(attempt, 6)))  # noqa: S311 - jitter only


@contextlib.contextmanager
def _transaction(bind: sa.Engine | sa.Connection) -> Iterator[sa.Connection]:
    if isinstance(bind, sa.Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        yield bind  # the caller owns the transaction (Alembic's autocommit block)
    else:
        with bind.begin():
            yield bind
