"""Adoption: encrypt the existing plaintext values of one DynamoDB attribute in place.

The DynamoDB counterpart of SQL's ``encrypt_column`` (``fieldcrypt encrypt-column
dynamodb:TABLE.ATTRIBUTE``), online and beside the application, on the re-encryption job's
machinery (:class:`~fieldcrypt.dynamodb.reencrypt.Reencryptor`: parallel-scan segments,
checkpoints, a KMS rate limit, progress, a dry run):

- each plaintext value is encrypted exactly as :class:`~fieldcrypt.dynamodb.ItemEncryptor` (and
  so the PynamoDB adapter) would write it, bound to its item, with its blind-index token when the
  attribute is searchable;
- the write is a conditional ``UpdateItem`` on the plaintext that was read (``SET #a = :new`` if
  ``#a = :plaintext``): a value the application wrote meanwhile (a new plaintext from a process
  not yet upgraded, or a ciphertext) is never overwritten; the item is read again and, if still
  plaintext, adopted from its new value;
- values that are already ciphertexts (the application's writes, an earlier run) are skipped, so
  a re-run or a resumed run encrypts each value once;
- a value of another DynamoDB type than the field declares (or a damaged ciphertext) is left as
  it is and listed in :attr:`Reencryptor.failures` by key.

While it runs the application reads the attribute in transitional mode
(``EncryptedAttribute(..., transitional=True)`` or ``EncryptedField(..., transitional=True)``);
docs/dynamodb.md, "Adopting plaintext attributes", is the runbook.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fieldcrypt.dynamodb import values
from fieldcrypt.dynamodb.item import EncryptedField, ItemEncryptor
from fieldcrypt.dynamodb.reencrypt import MAX_RACES, Reencryptor
from fieldcrypt.errors import ConfigurationError, DamagedCiphertext

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COUNTS = (
    "scanned",
    "encrypted",
    "already_encrypted",
    "absent",
    "failed",
    "conflicts",
    "conflicts_unresolved",
)


class Adopter(Reencryptor):
    """Encrypts every plaintext value of ``table.attribute`` as ``field`` declares it.

    Args:
        field: how the attribute is encrypted (its kind, keyring, blind index and normalizer), as
            the application's :class:`~fieldcrypt.dynamodb.ItemEncryptor` or model declares it.
        **options: :class:`~fieldcrypt.dynamodb.reencrypt.Reencryptor`'s (segments, batch size,
            KMS rate limit, checkpoints, progress); ``dry_run`` counts what would be encrypted.

    Raises:
        ConfigurationError: a missing table, a key attribute, or (at the first token) the
            attribute's recorded blind-index options differ from ``field``'s.
    """

    outcomes = COUNTS
    checkpoint_job = "encrypt-"
    operation = "encrypt"  # fieldcrypt.rotation.rows counts it as SQL's encrypt-column does

    def __init__(
        self, client: DynamoDBClient, table: str, attribute: str, *, field: EncryptedField, **options: Any
    ) -> None:
        super().__init__(client, table, attribute, keyring=field.resolve_keyring(), **options)
        self.kind = field.kind
        # The same field on this job's (rate-limited) keyring: the values and tokens are the
        # item encryptor's, byte for byte.
        self.encryptor = ItemEncryptor(
            table=table,
            key_attributes=self.column.key_names,
            attributes={attribute: replace(field, keyring=self.keyring)},
        )
        self.index_attribute = self.encryptor.indexes.get(attribute)

    def _one(self, item: dict[str, Any], target: str | None, counts: Counter[str]) -> str:
        """Encrypt one item's plaintext value; returns the outcome's count name."""
        name = self.column.attribute
        stored = item.get(name)
        for _ in range(MAX_RACES):
            if stored is None or stored == {"NULL": True}:
                return "absent"
            try:
                if values.ciphertext_in(self.kind, stored) is not None:
                    return "already_encrypted"
                self._check_kind(stored)
            except DamagedCiphertext:
                return self._fail(item, DamagedCiphertext(**self.column.place(item).where()))
            except ConfigurationError as exc:
                return self._fail(item, exc)
            if self.dry_run:
                return "encrypted"
            new = self.encryptor.encrypt_item({**self.column.key(item), name: stored})
            written = {name: new[name]}
            if self.index_attribute is not None:
                written[self.index_attribute] = new[self.index_attribute]
            if self._write(item, stored, written):
                return "encrypted"
            counts["conflicts"] += 1  # the application wrote meanwhile: look again
            stored = self.column.read(item)
        return "conflicts_unresolved"

    def _check_kind(self, stored: dict[str, Any]) -> None:
        """Refuse a value of another DynamoDB type than the field's (it would never read back)."""
        found = next(iter(stored), "?") if len(stored) == 1 else "?"
        if found != self.kind:
            raise ConfigurationError(
                f"{self.column.table}.{self.column.attribute} holds a {found} value where the field "
                f"declares {self.kind}; left as it is (fix the item, or the field's kind)"
            )
        try:
            values.to_plaintext(self.kind, stored)
        except TypeError:
            raise ConfigurationError(
                f"{self.column.table}.{self.column.attribute} holds a malformed {found} value; left as it is"
            ) from None

    def _write(self, item: dict[str, Any], plaintext: dict[str, Any], new: dict[str, dict[str, Any]]) -> bool:
        """Set the attributes ``new`` if the attribute still holds ``plaintext``; False when it does
        not (the application wrote meanwhile)."""
        names = {f"#n{i}": name for i, name in enumerate(new)} | {"#a": self.column.attribute}
        given = {f":n{i}": value for i, value in enumerate(new.values())} | {":old": plaintext}
        update = "SET " + ", ".join(f"#n{i} = :n{i}" for i in range(len(new)))
        return self._conditional_update(item, update, "#a = :old", names, given)
