"""The reports every operation returns, and their one JSON schema (``as_dict``).

SQL and DynamoDB share these classes, so ``fieldcrypt status`` prints the same fields, the same
human text and exits the same way whatever the target. A report never holds a value or key
material: counts, key ids, master key ids and primary keys only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from fieldcrypt.keys.record import DataKeyRecord, Status

MAX_LISTED = 1000  # rows listed by key in a report; the counts cover them all
_HIDDEN = {"shown": False}


@dataclass
class Report:
    """Base of the reports: ``as_dict`` is every shown field plus the ``DERIVED`` properties.

    ``failures`` fields hold ``(row, error)`` pairs and come out as ``{row, error}`` objects;
    fields declared with ``hidden()`` stay out (a derived property presents them).
    """

    DERIVED: ClassVar[tuple[tuple[str, str], ...]] = ()  # (JSON name, property)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata.get("shown", True):
                out[f.metadata.get("name", f.name)] = _plain(f.name, getattr(self, f.name))
        for name, attribute in self.DERIVED:
            out[name] = _plain(name, getattr(self, attribute))
        return out


def hidden() -> Any:
    """A counter kept on the report but shown only through a derived property."""
    return field(default=0, metadata=_HIDDEN)


def _plain(name: str, value: Any) -> Any:
    if name == "failures":
        return [{"row": row, "error": error} for row, error in value]
    if isinstance(value, Counter):
        return dict(value)
    return value


@dataclass
class ColumnStatus(Report):
    """What one encrypted column (SQL) or attribute (DynamoDB) holds, and what is left to do.

    ``rows`` counts rows or items; ``null`` NULL values or absent attributes. ``failed`` counts
    values that did not decrypt although their key is live, or are not v1 ciphertexts at all
    (only when ``verified``: DynamoDB status decrypts every value, SQL status reads headers only). ``unused_data_keys`` lists the
    keyring's active encryption keys, other than the current one, that no value here uses.

    A per-subject column (``per_subject``) has no current data key: each value's current key is
    its subject's own. ``subject_keyed`` counts values under a live subject's key, and
    ``shredded_subject`` values of shredded subjects: erased on purpose, not work left and not
    damage (their rows are listed by primary key, never by subject id).
    """

    table: str
    column: str
    target: str = ""
    rows: int = 0
    null: int = 0
    plaintext: int = 0
    by_data_key: Counter[str] = field(default_factory=Counter)
    by_master_key: Counter[str] = field(default_factory=Counter)
    current_key: str | None = field(default=None, metadata={"name": "current_data_key"})
    destroyed: int = hidden()
    unknown_key: int = hidden()
    failed: int = hidden()
    undecryptable_rows: list[str] = field(default_factory=list)
    plaintext_rows: list[str] = field(default_factory=list)
    unknown_key_rows: list[str] = field(default_factory=list)
    unused_data_keys: list[str] = field(default_factory=list)
    damaged_key_rows: list[dict[str, str]] = field(default_factory=list)  # skipped, unreadable
    verified: bool = False
    per_subject: bool = False
    subject_keyed: int = 0
    shredded_subject: int = 0
    shredded_rows: list[str] = field(default_factory=list)

    DERIVED = (
        ("encrypted", "encrypted"),
        ("not_on_current_key", "not_current"),
        ("undecryptable", "undecryptable"),
    )

    SUBJECT_FIELDS: ClassVar[tuple[str, ...]] = (
        "per_subject",
        "subject_keyed",
        "shredded_subject",
        "shredded_rows",
    )

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        if not self.per_subject:  # the schema of every other column and attribute stays as it was
            for name in self.SUBJECT_FIELDS:
                del out[name]
        return out

    @property
    def encrypted(self) -> int:
        return sum(self.by_data_key.values()) + self.subject_keyed + self.shredded_subject

    @property
    def not_current(self) -> int:
        # Per subject, every value under a shared data key has still to move to its subject's key.
        current = 0 if self.per_subject else self.by_data_key.get(self.current_key or "", 0)
        return sum(self.by_data_key.values()) - current - self.destroyed - self.unknown_key

    @property
    def undecryptable(self) -> dict[str, int]:
        return {"destroyed_key": self.destroyed, "unknown_key": self.unknown_key, "failed": self.failed}

    @property
    def work_remains(self) -> bool:
        """Plaintext, values on older keys or undecryptable values: the CLI exits 1."""
        return bool(self.plaintext or self.not_current or self.destroyed or self.unknown_key or self.failed)

    def count(self, key_id: str, record: DataKeyRecord | None, row: str | None) -> bool:
        """Count one ciphertext under ``key_id``; False (and ``row``, a key description, listed)
        when its data key is unknown or destroyed."""
        self.by_data_key[key_id] += 1
        if record is None:
            # Not trusted for its look: plaintext that begins with byte 0x01, or another
            # keyring's value. Listed by row, so it can be found (verify says which).
            self.unknown_key += 1
            if len(self.unknown_key_rows) < MAX_LISTED:
                self.unknown_key_rows.append(str(row))
        elif record.status is Status.DESTROYED or not record.wraps:
            self.destroyed += 1
        else:
            # A data key wrapped under two master keys (mid-rewrap, a second region) counts under both.
            for master_key_id in record.wraps:
                self.by_master_key[master_key_id] += 1
            return True
        self.list_row(row)
        return False

    def list_plaintext(self, row: str | None) -> None:
        if len(self.plaintext_rows) < MAX_LISTED:
            self.plaintext_rows.append(str(row))

    def count_subject(self, shredded: bool, row: str) -> None:
        """Count one value under its subject's own key; ``shredded``: that subject was erased."""
        if not shredded:
            self.subject_keyed += 1
            return
        self.shredded_subject += 1
        if len(self.shredded_rows) < MAX_LISTED:
            self.shredded_rows.append(row)

    def list_row(self, row: str | None) -> None:
        if len(self.undecryptable_rows) < MAX_LISTED:
            self.undecryptable_rows.append(str(row))

    def merge(self, other: ColumnStatus) -> None:
        """Add the counts of another segment of the same column."""
        for name in (
            "rows",
            "null",
            "plaintext",
            "destroyed",
            "unknown_key",
            "failed",
            "subject_keyed",
            "shredded_subject",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_data_key.update(other.by_data_key)
        self.by_master_key.update(other.by_master_key)
        for name in ("undecryptable_rows", "plaintext_rows", "unknown_key_rows", "shredded_rows"):
            setattr(self, name, (getattr(self, name) + getattr(other, name))[:MAX_LISTED])

    def note_unused(self, records: list[DataKeyRecord]) -> None:
        """List the active keys (not the current one) that no value of this column uses."""
        self.unused_data_keys = [
            r.key_id
            for r in records
            if r.status is Status.ACTIVE and r.key_id != self.current_key and not self.by_data_key[r.key_id]
        ]
