"""Re-encryption of one encrypted attribute of a DynamoDB table onto the keyring's current data key.

Online and safe to run beside the application:

- parallel scan: ``total_segments`` segments (DynamoDB's ``Segment``/``TotalSegments``), each a
  separate job that may run in another process or machine, or in this one on worker threads;
- every write is a conditional ``UpdateItem`` (``SET #a = :new`` if ``#a = :old``), so a value the
  application wrote meanwhile is never overwritten (``batch_write`` has no conditions); on a lost
  race the item is read again and, if still under an old key, retried;
- a checkpoint per segment after every page, so an interrupted job resumes where it stopped, and
  re-running a finished page is harmless (values already under the current key are skipped);
- an optional limit on KMS requests per second (only unwraps of data keys not yet cached call KMS).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fieldcrypt import format as fmt
from fieldcrypt import metrics, ratelimit
from fieldcrypt.dynamodb.checkpoint import Checkpoints, SegmentState
from fieldcrypt.dynamodb.tables import EncryptedColumn, check_segment
from fieldcrypt.errors import ConfigurationError, DecryptionError
from fieldcrypt.failures import note_failure
from fieldcrypt.keyring import Keyring
from fieldcrypt.tenant_rows import TenantRows

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger("fieldcrypt")
MAX_RACES = 5  # lost races per item before giving up on it (counted under "conflicts_unresolved")
COUNTS = (
    "scanned",
    "reencrypted",
    "current",
    "absent",
    "plaintext",
    "failed",
    "conflicts",
    "conflicts_unresolved",
)


class Reencryptor:
    """Moves every value of ``table.attribute`` to the keyring's current data key.

    Args:
        client: a low-level DynamoDB client for the table's region.
        keyring: the attribute's keyring.
        total_segments: how many parallel-scan segments the table is split into.
        batch_size: items per scan page (and per checkpoint); the SQL engine's name for the same knob.
        max_kms_calls_per_second: throttle this job's master-key (KMS) calls; the caller's keyring is untouched.
        dry_run: count what would be re-encrypted; write nothing (not even a checkpoint or a key).
        checkpoint_dir: where segment checkpoints live (None: no resume).
        progress: called after each page with the number of items this job has scanned so far
            (all its segments together, counting those that earlier runs scanned before a
            resume), e.g. to drive a progress bar.
        resumed: called once by :meth:`run`, before any page, with the number of items earlier
            runs of its segments scanned (when there are any), so that a rate counts only the
            items of this run (a progress meter's ``start_at``).
        tenant: only this tenant's items (``keyring`` is then that tenant's keyring).
    """

    outcomes: tuple[str, ...] = COUNTS  # the outcomes a run reports (a subclass's job may have others)
    checkpoint_job = ""  # a subclass's checkpoint files are kept apart from these
    operation = "reencrypt"  # the operation attribute of fieldcrypt.rotation.rows

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        attribute: str,
        *,
        keyring: Keyring,
        total_segments: int = 1,
        batch_size: int = 100,
        max_kms_calls_per_second: float | None = None,
        dry_run: bool = False,
        checkpoint_dir: str | None = None,
        progress: Callable[[int], None] | None = None,
        resumed: Callable[[int], None] | None = None,
        tenant: TenantRows | None = None,
    ) -> None:
        check_segment(0, total_segments)
        if not 1 <= batch_size <= 10_000:
            raise ConfigurationError("batch size must be between 1 and 10000 items")
        self.column = EncryptedColumn.open(client, table, attribute, self.also_read(), tenant)
        # Only this job's KMS calls wait for the bucket; the application's share the client.
        self.limiter = (
            ratelimit.TokenBucket(max_kms_calls_per_second, burst=1) if max_kms_calls_per_second else None
        )
        self.keyring = ratelimit.limited(keyring, self.limiter)
        self.total_segments = total_segments
        self.batch_size = batch_size
        self.dry_run = dry_run
        scope = attribute if tenant is None else f"{attribute}.{tenant.slug}"
        self.checkpoints = Checkpoints(
            None if dry_run else checkpoint_dir, table, scope, total_segments, self.checkpoint_job
        )
        self.progress = progress
        self.resumed = resumed
        self._names = (table, attribute)  # the attributes of fieldcrypt.rotation.rows
        #: Items this run could not do, as ``(key, reason)``; never a value (at most 1000 listed).
        self.failures: list[tuple[str, str]] = []
        self._scanned = 0
        self._scanned_lock = threading.Lock()

    def also_read(self) -> tuple[str, ...]:
        """Attributes read with the attribute (none here; a re-binding reads the old name)."""
        return ()

    def run(self, segments: Iterable[int] | None = None, *, workers: int = 1) -> dict[str, int]:
        """Run the given segments (default: all), ``workers`` at a time; returns summed counts."""
        chosen = list(range(self.total_segments)) if segments is None else list(segments)
        for segment in chosen:
            check_segment(segment, self.total_segments)
        states = {segment: self.checkpoints.load(segment) for segment in chosen}
        earlier = sum(state.counts.get("scanned", 0) for state in states.values())
        if earlier:
            # Every segment's earlier items at once, before any page: the meter learns where this
            # run starts, and progress never steps back while the segments begin one by one.
            if self.resumed is not None:
                self.resumed(earlier)
            self._count_scanned(earlier)
        total: Counter[str] = Counter({name: 0 for name in self.outcomes})
        if workers <= 1:
            results = [self._run_segment(s, states[s]) for s in chosen]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fieldcrypt-reencrypt") as pool:
                results = list(pool.map(lambda s: self._run_segment(s, states[s]), chosen))
        for result in results:
            total.update(result)
        return dict(total)

    def run_segment(self, segment: int) -> dict[str, int]:
        """Run one segment from its checkpoint to its end; returns this run's counts."""
        state = self.checkpoints.load(segment)
        if state.counts.get("scanned"):
            self._count_scanned(state.counts["scanned"])  # progress starts at the resumed position
        return self._run_segment(segment, state)

    def _run_segment(self, segment: int, state: SegmentState) -> dict[str, int]:
        counts: Counter[str] = Counter({name: 0 for name in self.outcomes})
        before = Counter(state.counts)  # what earlier runs of this segment did
        if state.done:
            counts["segments_already_done"] += 1
            return dict(counts)
        if state.start is not None:
            counts["segments_resumed"] += 1
        for items, next_start in self.column.pages(
            segment, self.total_segments, state.start, self.batch_size
        ):
            target = self._target_key_id()
            failed_before = counts["failed"]
            for item in items:
                counts["scanned"] += 1
                counts[self._one(item, target, counts)] += 1
            if not self.dry_run:
                failed = counts["failed"] - failed_before
                metrics.rows(self.operation, *self._names, processed=len(items), failed=failed)
            state = SegmentState(start=next_start, done=not next_start, counts=dict(before + counts))
            self.checkpoints.save(segment, state)
            self._count_scanned(len(items))
        return dict(counts)

    def _count_scanned(self, items: int) -> None:
        with self._scanned_lock:  # held while reporting, so reports never go backwards
            self._scanned += items
            if self.progress is not None:
                self.progress(self._scanned)

    def _fail(self, item: dict[str, Any], exc: Exception) -> str:
        """List ``item`` (by key) as not done; returns the outcome's count name."""
        with self._scanned_lock:
            note_failure(self.failures, self.column.place(item).row, exc)
        return "failed"

    def _target_key_id(self) -> str | None:
        if not self.dry_run:
            return self.keyring.current_key_id()
        return self.keyring.chosen_key_id()  # a dry run creates no key

    def _one(self, item: dict[str, Any], target: str | None, counts: Counter[str]) -> str:
        """Bring one item's value to ``target``; returns the outcome's count name."""
        place = self.column.place(item)
        stored = item.get(self.column.attribute)
        for _ in range(MAX_RACES):
            if stored is None:
                return "absent"
            if "B" not in stored:
                return "plaintext"  # adoption is encrypt-column's job (adopt.py); never written here
            blob = bytes(stored["B"])
            try:
                if self.keyring.key_id_of(blob) == target:
                    return "current"
            except (fmt.MalformedCiphertext, fmt.UnknownVersion):
                log.warning("fieldcrypt: %s.%s row %s is not a v1 ciphertext", *_where(place))
                return self._fail(item, DecryptionError(**place.where()))
            if self.dry_run:
                return "reencrypted"
            try:
                fresh = self.keyring.encrypt(self.keyring.decrypt(blob, place), place)
            except DecryptionError as exc:
                log.warning("fieldcrypt: %s (left unchanged)", exc)
                return self._fail(item, exc)
            if self._swap(item, blob, fresh):
                return "reencrypted"
            counts["conflicts"] += 1  # the application wrote meanwhile: look again
            stored = self.column.read(item)
        return "conflicts_unresolved"

    def _swap(self, item: dict[str, Any], old: bytes, new: bytes) -> bool:
        return self._conditional_update(
            item,
            "SET #a = :new",
            "#a = :old",
            {"#a": self.column.attribute},
            {":new": {"B": new}, ":old": {"B": old}},
        )

    def _conditional_update(
        self, item: dict[str, Any], update: str, condition: str, names: dict[str, str], given: dict[str, Any]
    ) -> bool:
        """Write ``update`` to ``item`` if ``condition`` (what was read) still holds; False when
        it does not (the application wrote meanwhile: look again)."""
        return self.column.update_if(item, update, condition, names, given)


def _where(place: Any) -> tuple[str, str, str | None]:
    return place.table, place.column, place.describe_row()
