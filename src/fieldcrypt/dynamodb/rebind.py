"""Re-binding after a rename: every value of an attribute still bound to its old table or
attribute name is encrypted again at its own place (``fieldcrypt rebind``).

DynamoDB renames nothing: a "renamed table" is a copy of the items under a new table name (the
ciphertexts copied as they are, still bound to the old table), and a "renamed attribute" is a new
name the model reads, the items still holding the old one. While the model declares
``bound_as=(old_table, old_attribute)`` the application reads both (docs/dynamodb.md, "Schema
changes"); this job, the re-encryption job's machinery (parallel-scan segments, checkpoints,
conditional writes, a KMS rate limit), moves each item so that ``bound_as`` can be dropped:

- a value that opens at its own place is left as it is (re-bound already, or written by the
  application since), and a stale copy under the old attribute name is removed;
- a value that opens only at the old place is encrypted again at its own place under the current
  data key, written under the new attribute name (removing the old one in the same write), with
  its blind-index token made at the new place when an :class:`~fieldcrypt.dynamodb.ItemEncryptor`
  describes the attribute;
- every write is conditional on what was read (the new attribute's value or absence, the old
  one's value), so a value the application wrote meanwhile is never overwritten: the item is read
  again and looked at anew.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from fieldcrypt.dynamodb import reencrypt, values
from fieldcrypt.dynamodb.item import ItemEncryptor
from fieldcrypt.dynamodb.reencrypt import MAX_RACES, Reencryptor
from fieldcrypt.errors import ConfigurationError, DecryptionError
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, old_names

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger("fieldcrypt")
# The re-encryption job's outcomes, a value moved to its own place counted as "rebound".
COUNTS = tuple("rebound" if name == "reencrypted" else name for name in reencrypt.COUNTS)


class Rebinder(Reencryptor):
    """Moves every value of ``table.attribute`` still bound to ``from_`` to its own place.

    Args:
        from_: ``(old_table, old_attribute)``: where the values were written (the model's
            ``bound_as``). When ``old_attribute`` differs from ``attribute``, items still holding
            the old attribute name are moved to the new one.
        encryptor: the table as the application describes it, for a searchable attribute: its
            blind-index token is then made again at the new place (without it, tokens are left
            as they are; lookups keep finding them only while ``bound_as`` is declared).
        the rest: as :class:`~fieldcrypt.dynamodb.reencrypt.Reencryptor` (segments, batch size,
            KMS rate limit, dry run, checkpoints, progress).

    Raises:
        ConfigurationError: ``from_`` names the attribute itself, or ``encryptor`` describes
            another table or not this attribute.
    """

    outcomes = COUNTS
    checkpoint_job = "rebind-"
    operation = "rebind"

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        attribute: str,
        *,
        from_: tuple[str, str],
        keyring: Keyring,
        encryptor: ItemEncryptor | None = None,
        **options: Any,
    ) -> None:
        old = old_names(from_, "attribute")
        if old is None or old == (table, attribute):
            raise ConfigurationError(
                f"rebind of {table}.{attribute}: --from must name the old table and attribute it was "
                f"renamed from, not {from_!r}"
            )
        if encryptor is not None and (encryptor.table != table or attribute not in encryptor.fields):
            raise ConfigurationError(f"the item encryptor given does not describe {table}.{attribute}")
        self.old = old
        self.renamed_from = old[1] if old[1] != attribute else None
        self.encryptor = encryptor
        super().__init__(client, table, attribute, keyring=keyring, **options)

    def also_read(self) -> tuple[str, ...]:
        return (self.renamed_from,) if self.renamed_from else ()

    def _one(self, item: dict[str, Any] | None, target: str | None, counts: Counter[str]) -> str:
        """Bring one item's value to its own place; returns the outcome's count name."""
        for _ in range(MAX_RACES):
            if item is None:
                return "absent"  # deleted meanwhile
            outcome = self._try(item)
            if outcome is not None:
                return outcome
            counts["conflicts"] += 1  # the application wrote meanwhile: look again
            item = self.column.read_item(item)
        return "conflicts_unresolved"

    def _try(self, item: dict[str, Any]) -> str | None:
        """One attempt: the outcome, or None when a conditional write lost a race."""
        own = self.column.place(item)
        new = item.get(self.column.attribute)
        old = item.get(self.renamed_from) if self.renamed_from else None
        stored = new if new is not None else old
        if stored is None:
            return "absent"
        if "B" not in stored:
            return "plaintext"  # adoption is encrypt's job; never written here
        blob = bytes(stored["B"])
        if new is not None and self._opens(blob, own) is not None:
            if old is None or self.dry_run:
                return "current"
            return "current" if self._write(item, new, old) else None  # drop the stale old copy
        data = self._opens(blob, Place(*self.old, own.row))
        if data is None:
            log.warning(
                "fieldcrypt: %s.%s row %s opens neither at its own place nor at %s.%s (left unchanged)",
                own.table,
                own.column,
                own.describe_row(),
                *self.old,
            )
            return self._fail(item, DecryptionError(**own.where()))
        if self.dry_run:
            return "rebound"
        fresh = {"B": self.keyring.encrypt(data, own)}
        return "rebound" if self._write(item, new, old, fresh, self._token(data)) else None

    def _opens(self, blob: bytes, place: Place) -> bytes | None:
        try:
            return self.keyring.decrypt(blob, place)
        except DecryptionError:  # KeyAccessError is not: KMS trouble stops the job
            return None

    def _token(self, data: bytes) -> bytes | None:
        if self.encryptor is None or self.column.attribute not in self.encryptor.indexes:
            return None
        kind = self.encryptor.fields[self.column.attribute].kind
        return self.encryptor.index_token(self.column.attribute, values.from_plaintext(kind, data))

    def _write(
        self,
        item: dict[str, Any],
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
        fresh: dict[str, Any] | None = None,
        token: bytes | None = None,
    ) -> bool:
        """Set ``fresh`` (and its token), remove the old attribute name; only if the item still
        holds ``new`` (or nothing) and ``old`` (or nothing). False when that no longer holds."""
        names = {"#a": self.column.attribute}
        given: dict[str, Any] = {}
        sets: list[str] = []
        conditions = ["attribute_not_exists(#a)" if new is None else "#a = :cur"]
        if new is not None:
            given[":cur"] = new
        if fresh is not None:
            sets.append("#a = :new")
            given[":new"] = fresh
        if token is not None and self.encryptor is not None:
            names["#i"] = self.encryptor.indexes[self.column.attribute]
            sets.append("#i = :tok")
            given[":tok"] = {"B": token}
        expression = f"SET {', '.join(sets)}" if sets else ""
        if old is not None and self.renamed_from is not None:
            names["#o"] = self.renamed_from
            conditions.append("#o = :old")
            given[":old"] = old
            expression += " REMOVE #o"
        return self._conditional_update(item, expression.strip(), " AND ".join(conditions), names, given)
