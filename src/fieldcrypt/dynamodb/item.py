"""Field encryption for plain boto3 / aioboto3 users: encrypt and decrypt whole items.

:class:`ItemEncryptor` works on the low-level DynamoDB JSON shape (``{"ssn": {"S": "..."}}``, what
``client.put_item(Item=...)`` takes and ``client.get_item(...)["Item"]`` returns), so no ORM is
needed. It writes exactly what the PynamoDB adapter writes for the same value: format v1 bytes
stored as ``B``, bound to ``Place(table, attribute, row=<item key>)``, and the same blind-index
tokens, so either can read the other's items (docs/dynamodb.md, "Item encryptor").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

from fieldcrypt import audit, index_records
from fieldcrypt.column import open_at
from fieldcrypt.dynamodb import tenancy, values, wire
from fieldcrypt.dynamodb.prepared import AttributePaths
from fieldcrypt.dynamodb.tables import key_names
from fieldcrypt.errors import ConfigurationError, DamagedCiphertext, DecryptionError, QueryNotSupportedError
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, RowKey, encode_row_key, old_names
from fieldcrypt.registry import get_keyring
from fieldcrypt.tenant_ids import canonical_tenant

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from fieldcrypt.tenants import TenantKeyrings

AttributeValue = Mapping[str, Any]
Item = Mapping[str, AttributeValue]


@dataclass(frozen=True)
class EncryptedField:
    """How one attribute is encrypted.

    Args:
        kind: the DynamoDB type of the plaintext value: ``"S"``, ``"N"``, ``"B"``, ``"BOOL"``,
            ``"M"`` or ``"L"`` (positional).
        keyring: a registered keyring's name (resolved at first use) or a :class:`Keyring`; with
            ``tenant``, a registered :class:`~fieldcrypt.TenantKeyrings`' name (or the object).
        tenant: the attribute holding the item's tenant id (a string or integer, in clear; it may
            be the hash key): each item's value is encrypted under that tenant's keyring, and
            searches run within one tenant (docs/tenants.md).
        searchable: keep an equality token (blind index) in ``index_attribute``, to be the hash
            key of a GSI; query it with :meth:`ItemEncryptor.search_tokens` and pass the items
            found through :meth:`ItemEncryptor.verified`.
        index_attribute: the token's attribute name (default ``<attribute>_bidx``; implies
            ``searchable``).
        normalizer: applied to the value's payload (the ``str`` of an ``S``, the number text of an
            ``N``...) before indexing, on writes and searches alike (e.g. strip dashes).
        bound_as: ``(old_table, old_attribute)`` after a table or attribute rename: values still
            bound to the old names decrypt through a second try there, an item lacking the
            attribute reads ``old_attribute`` instead, and searches also match tokens made at the
            old place. Writes use the new names. ``fieldcrypt rebind`` moves the old values
            (docs/dynamodb.md, "Schema changes").
        transitional: while ``fieldcrypt encrypt-column dynamodb:TABLE.ATTRIBUTE`` adopts the
            attribute, also read its old plaintext values (returned as they are stored); writes
            are always encrypted, and searches are refused (plaintext items have no token yet).
            Drop it once ``fieldcrypt status`` shows no plaintext left (docs/dynamodb.md,
            "Adopting plaintext attributes").
        subject: the attribute holding each item's subject id (a user or customer id: a string
            or an integer, in clear): the value is then encrypted under that subject's own key,
            erased with ``Keyring.shred_subject`` (docs/rotation.md, "Erasing one subject"), as
            PynamoDB's ``EncryptedAttribute(subject=...)``, whose items it reads and writes.

    Raises:
        ConfigurationError: an unknown kind, no keyring, or ``subject`` with ``bound_as`` or
            ``searchable``.
    """

    kind: str
    _: KW_ONLY
    keyring: str | Keyring | TenantKeyrings
    tenant: str | None = None
    searchable: bool = False
    index_attribute: str | None = None
    normalizer: Callable[[Any], Any] | None = None
    bound_as: tuple[str, str] | None = None
    transitional: bool = False
    subject: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in values.KINDS:
            raise ConfigurationError(
                f"cannot encrypt DynamoDB {self.kind!r} values; choose one of {', '.join(values.KINDS)}"
            )
        if self.tenant is not None:
            tenancy.check_declaration(self.keyring, self.tenant, "EncryptedField")
        elif not self.keyring or not isinstance(self.keyring, str | Keyring):
            raise ConfigurationError("keyring must be a registered keyring's name or a Keyring")
        if self.subject is not None and (not isinstance(self.subject, str) or not self.subject):
            raise ConfigurationError("subject must be the name of the attribute holding the subject id")
        if self.subject is not None and self.bound_as is not None:
            raise ConfigurationError("subject and bound_as together are not supported yet: rebind first")
        object.__setattr__(self, "searchable", bool(self.searchable or self.index_attribute))
        if self.subject is not None and self.searchable:
            # A token is made under the keyring's index key, not the subject's: it would outlive a shred.
            raise ConfigurationError(
                "a per-subject field cannot be searchable: its tokens would survive a shred"
            )
        object.__setattr__(self, "bound_as", old_names(self.bound_as, "attribute"))

    def resolve_keyring(self) -> Keyring:
        """The one keyring of a field without ``tenant`` (see :meth:`keyring_for`)."""
        if self.tenant is not None:
            raise ConfigurationError(
                f"this field is encrypted per tenant ({self.tenant}): its keyring depends on the item"
            )
        return get_keyring(self.keyring) if isinstance(self.keyring, str) else self.keyring  # type: ignore[return-value]

    def keyring_for(self, tenant: Any, where: str = "EncryptedField") -> Keyring:
        """The keyring for an item of ``tenant`` (the field's one keyring without ``tenant=``).

        Raises:
            ConfigurationError: a per-tenant field without a tenant, or an unusable tenant id.
        """
        if self.tenant is None:
            return self.resolve_keyring()
        return tenancy.keyring_for(self.keyring, tenant, attribute=self.tenant, where=where)  # type: ignore[arg-type]


class ItemEncryptor:
    """Encrypts the chosen attributes of one table's items, each bound to its item's key.

    Args:
        table: the table name (part of every value's associated data).
        key_attributes: the hash key attribute name, then the range key's if the table has one.
        attributes: the encrypted attributes by DynamoDB name (key attributes stay in clear).

    Raises:
        ConfigurationError: a key attribute listed as encrypted, a clash of attribute names.
    """

    def __init__(
        self, *, table: str, key_attributes: Sequence[str], attributes: Mapping[str, EncryptedField]
    ) -> None:
        keys = tuple(key_attributes) if not isinstance(key_attributes, str) else (key_attributes,)
        if not table or not 1 <= len(keys) <= 2 or len(set(keys)) != len(keys):
            raise ConfigurationError(
                "give the table name and its key_attributes: the hash key, then the range key if any"
            )
        if not attributes or not all(isinstance(f, EncryptedField) for f in attributes.values()):
            raise ConfigurationError("attributes maps attribute names to EncryptedField(...)")
        self.table = table
        self.key_attributes = keys
        self.fields = dict(attributes)
        self.indexes = {
            name: f.index_attribute or f"{name}_bidx" for name, f in attributes.items() if f.searchable
        }
        taken = set(keys) | set(attributes)
        for name, field in attributes.items():
            if field.tenant is not None and field.tenant in attributes:
                raise ConfigurationError(
                    f"{table}.{name}: its tenant attribute {field.tenant!r} is encrypted; the tenant "
                    "id must be stored in clear to choose the keyring"
                )
            if field.subject is not None and field.subject in attributes:
                raise ConfigurationError(
                    f"{table}.{name}: its subject attribute {field.subject!r} is encrypted; the "
                    "subject id must be stored in clear to choose the key that reads the rest"
                )
        for name in attributes:
            if name in keys:
                raise ConfigurationError(
                    f"{table}.{name} is a key attribute; key attributes are never encrypted (DynamoDB "
                    "must read them), so keep it in clear and encrypt the other attributes"
                )
        for name, index in self.indexes.items():
            if index in taken or list(self.indexes.values()).count(index) > 1:
                raise ConfigurationError(f"{table}.{name}: index attribute {index!r} is already in use")
        self._column_places = {name: Place(table, name) for name in self.indexes}
        # Per attribute, the per-value paths resolved once (fieldcrypt.dynamodb.prepared).
        self._paths = {
            name: AttributePaths(f.keyring, table, name, tenant=f.tenant, where=self._where(name))
            for name, f in attributes.items()
        }

    @classmethod
    def for_table(
        cls, client: DynamoDBClient, table: str, attributes: Mapping[str, EncryptedField]
    ) -> ItemEncryptor:
        """An item encryptor whose key attributes are read from the table's key schema (one
        ``DescribeTable`` call), so they cannot be given in the wrong order: the order is part of
        every value's binding, and a swapped hash and range key would make values unreadable
        by the PynamoDB model.

        Raises:
            ConfigurationError: the table does not exist, or see the constructor.
        """
        return cls(table=table, key_attributes=key_names(client, table), attributes=attributes)

    # -- items ------------------------------------------------------------------------------

    def encrypt_item(self, item: Item) -> dict[str, dict[str, Any]]:
        """A copy of ``item`` with each encrypted attribute as ``{"B": <v1 ciphertext>}`` and its
        blind index set; ``{"NULL": True}`` is stored as an absent attribute (as PynamoDB does).

        Raises:
            ConfigurationError: the item lacks its key attributes.
            TypeError: a value of another DynamoDB type than its field declares.
        """
        out: dict[str, dict[str, Any]] = {name: dict(value) for name, value in item.items()}
        row: RowKey | None = None
        encoded = b""
        for name, field in self.fields.items():  # inline, not _declared: this runs per item
            value = item.get(name)
            if value is None:
                continue
            index = self.indexes.get(name)
            if "NULL" in value and dict(value) == {"NULL": True}:
                del out[name]
                if index is not None:
                    out.pop(index, None)
                continue
            try:  # a wrong type fails before any key is used
                plaintext = values.to_plaintext(field.kind, value)
            except TypeError as exc:
                raise TypeError(f"{self.table}.{name}: {exc}") from None
            paths = self._paths[name]
            if row is None:  # computed once per item, and only when there is a value to bind
                row = wire.row_key(item, self.key_attributes)  # raises: the item lacks its key
                encoded = encode_row_key(row)
            tenant = None if field.tenant is None else tenancy.tenant_in(item, field.tenant, paths.where)
            # Chosen before the write, from the item (one keyring: the followed one, without a call).
            keyring = paths.fixed() if paths.fixed is not None else paths.keyring(tenant)
            if field.subject is None:
                out[name] = {"B": paths.seal(keyring, plaintext, row, encoded)}
            else:
                subject = self._subject_of(name, field, item)
                out[name] = {
                    "B": keyring.encrypt_for_subject(subject, plaintext, Place(self.table, name, row))
                }
            if index is not None:
                indexed = plaintext if field.normalizer is None else self._index_plaintext(name, field, value)
                out[index] = {"B": paths.token(indexed, field.normalizer, tenant)}
        return out

    def decrypt_item(self, item: Item) -> dict[str, dict[str, Any]]:
        """A copy of ``item`` with each encrypted attribute back as its plaintext AttributeValue.

        Blind-index attributes are left as they are (tokens reveal nothing without the key). A
        ``transitional`` field's plaintext value is returned as it is.

        Raises:
            DecryptionError: a value tampered with, moved from another item or attribute, or not a
                ciphertext at all (plaintext where a ciphertext belongs is never passed on).
            ConfigurationError: the item lacks its key attributes (read them with the values).
        """
        out: dict[str, dict[str, Any]] = {name: dict(value) for name, value in item.items()}
        row: RowKey | None = None
        for name, field, value in self._declared(item, reading=True):
            if row is None:  # computed once per item, and only when there is a value to open
                row = wire.row_key(item, self.key_attributes)
            if field.transitional and _still_plaintext(field, value, Place(self.table, name, row)):
                continue  # the old plaintext, as it is stored (out holds a copy)
            stored = value.get("B") if len(value) == 1 else None
            if type(stored) is not bytes:
                if not isinstance(stored, bytes | bytearray):
                    raise DecryptionError(**Place(self.table, name, row).where())
                stored = bytes(stored)
            paths = self._paths[name]
            tenant = None if field.tenant is None else tenancy.tenant_in(item, field.tenant, paths.where)
            if field.subject is None and field.bound_as is None:
                plaintext = paths.open(stored, row, tenant)
            else:
                place = Place(self.table, name, row)
                keyring = paths.keyring(tenant)
                if field.subject is not None:
                    subject = self._subject_of(name, field, item)
                    plaintext = keyring.decrypt_for_subject(subject, stored, place)
                else:
                    plaintext = open_at(keyring, stored, self._places(field, place))
                    old = self._renamed_from(name, field)
                    if old is not None and name not in item:
                        del out[old]  # read under its new name
            try:
                out[name] = values.from_plaintext(field.kind, plaintext)
            except (ValueError, TypeError, KeyError, UnicodeDecodeError):
                # Authentic, but not a value of this type: the field's kind changed under it.
                raise DecryptionError(**Place(self.table, name, row).where()) from None
        return out

    # -- search -----------------------------------------------------------------------------

    def index_token(self, attribute: str, value: AttributeValue, *, tenant: Any = None) -> bytes:
        """The token to store for ``value`` in ``attribute``'s blind index (the newest index key;
        of ``tenant``'s keyring for a per-tenant attribute).

        Raises:
            ConfigurationError: not a searchable attribute, or the attribute's recorded index
                options (keyring, token length, normalizer) differ from this field's.
        """
        keyring, place, plaintext = self._index_input(attribute, value, writing=True, tenant=tenant)
        return keyring.blind_index(plaintext, place)

    def search_tokens(self, attribute: str, value: AttributeValue, *, tenant: Any = None) -> list[bytes]:
        """Every token ``value`` may be stored under in ``attribute``'s blind index: query the
        GSI keyed on it once per token (two during a blind-index key rotation). Never creates a key.

        A per-tenant attribute is searched within ``tenant`` (required): equal values of two
        tenants have different tokens, so another tenant's items never match.

        Raises:
            ConfigurationError: ``attribute`` is not a searchable encrypted attribute; a
                per-tenant attribute without ``tenant``, or ``tenant`` for one that is not.
            TypeError: a value of another DynamoDB type than the field declares.
        """
        self._refuse_search_while_transitional(attribute)
        keyring, place, plaintext = self._index_input(attribute, value, writing=False, tenant=tenant)
        tokens = keyring.blind_index_candidates(plaintext, place)
        field = self.fields[attribute]
        if field.bound_as is not None:  # items not yet re-bound keep tokens made at the old place
            old = Place(*field.bound_as)
            index_records.check(keyring, old, field.normalizer, writing=False)
            tokens += keyring.blind_index_candidates(plaintext, old)
        return tokens

    def _index_input(
        self, attribute: str, value: AttributeValue, *, writing: bool, tenant: Any
    ) -> tuple[Keyring, Place, bytes]:
        """The keyring, place and normalised bytes a token of ``value`` is made from; checks the
        attribute's index record (``writing`` records it when missing)."""
        field = self._searchable(attribute, tenant)
        plaintext = self._index_plaintext(attribute, field, value)
        keyring, place = field.keyring_for(tenant, self._where(attribute)), self._column_places[attribute]
        index_records.check(keyring, place, field.normalizer, writing=writing)
        return keyring, place, plaintext

    @staticmethod
    def _places(field: EncryptedField, place: Place) -> tuple[Place, ...]:
        """Where a value may be bound: its own place, then the old one after a rename."""
        return (place,) if field.bound_as is None else (place, Place(*field.bound_as, place.row))

    @staticmethod
    def _renamed_from(name: str, field: EncryptedField) -> str | None:
        return None if field.bound_as is None or field.bound_as[1] == name else field.bound_as[1]

    def verified(
        self, attribute: str, value: AttributeValue, items: Iterable[Item], *, tenant: Any = None
    ) -> list[dict[str, Any]]:
        """The items of a blind-index query that truly hold ``value`` (and, for a per-tenant
        attribute, belong to ``tenant``), decrypted.

        A token match proves nothing (a database writer can copy a victim's token into another
        item; truncated tokens can collide), so pass every query result through this: an item
        whose ``attribute`` does not decrypt to ``value`` (normalised) is dropped and reported on
        the ``fieldcrypt.audit`` logger as ``blind_index.mismatch`` with its key, never its value.

        Raises:
            DecryptionError: an item whose values do not decrypt at all (tampered).
            ConfigurationError: ``attribute`` is not a searchable encrypted attribute.
        """
        field = self._searchable(attribute, tenant)
        wanted = self._tenant_name(field, tenant)
        self._refuse_search_while_transitional(attribute)
        searched = self._index_plaintext(attribute, field, value)
        kept: list[dict[str, Any]] = []
        for item in items:
            plain = self.decrypt_item(item)
            found = plain.get(attribute)
            if (
                found is not None
                and self._tenant_name(field, self._tenant_of(attribute, field, item)) == wanted
                and self._index_plaintext(attribute, field, found) == searched
            ):
                kept.append(plain)
            else:
                row = wire.row_key(item, self.key_attributes)
                audit.blind_index_mismatch(self.table, attribute, repr(row))
        return kept

    def index_attribute(self, attribute: str) -> str:
        """The name of the attribute holding ``attribute``'s blind-index token."""
        try:
            return self.indexes[attribute]
        except KeyError:
            raise ConfigurationError(
                f"{self.table}.{attribute} is not a searchable encrypted attribute"
            ) from None

    # -- internals --------------------------------------------------------------------------

    def _where(self, attribute: str) -> str:
        return f"{self.table}.{attribute}"

    def _searchable(self, attribute: str, tenant: Any) -> EncryptedField:
        """The searchable field ``attribute``, checked against whether a tenant was given."""
        field = self.fields.get(attribute)
        if field is None or attribute not in self.indexes:
            raise ConfigurationError(f"{self.table}.{attribute} is not a searchable encrypted attribute")
        if field.tenant is None and tenant is not None:
            raise ConfigurationError(f"{self.table}.{attribute} is not encrypted per tenant: drop tenant=")
        if field.tenant is not None and tenant is None:
            raise ConfigurationError(
                f"{self.table}.{attribute} is encrypted per tenant ({field.tenant}): a search runs "
                "within one tenant, pass tenant="
            )
        return field

    def _tenant_of(self, name: str, field: EncryptedField, item: Item) -> Any:
        return None if field.tenant is None else tenancy.tenant_in(item, field.tenant, self._where(name))

    @staticmethod
    def _tenant_name(field: EncryptedField, tenant: Any) -> str | None:
        """The canonical tenant id; None for a field not per tenant (or an item without one)."""
        if field.tenant is None or tenant is None:
            return None
        return canonical_tenant(tenant)

    def _keyring(self, name: str, field: EncryptedField, item: Item) -> Keyring:
        """The keyring of ``name``'s value in ``item``: the field's, or the item's tenant's."""
        if field.tenant is None:
            return field.resolve_keyring()
        return field.keyring_for(self._tenant_of(name, field, item), self._where(name))

    def _refuse_search_while_transitional(self, attribute: str) -> None:
        field = self.fields.get(attribute)
        if field is not None and field.transitional:
            raise QueryNotSupportedError(
                f"{self.table}.{attribute} is being adopted (transitional=True): items still in "
                "plaintext have no blind-index token, so a search would miss them, and a plaintext "
                "cannot be verified; search once encrypt-column has finished and transitional is dropped"
            )

    def _declared(
        self, item: Item, *, reading: bool = False
    ) -> list[tuple[str, EncryptedField, AttributeValue]]:
        """Each declared attribute present in ``item`` (a list, not a generator: this runs per
        item and a generator costs more to drive). ``reading``: a renamed attribute's value is
        found under its old name too."""
        found: list[tuple[str, EncryptedField, AttributeValue]] = []
        for name, field in self.fields.items():
            value = item.get(name)
            if (
                value is None and reading and field.bound_as is not None
            ):  # an attribute rename not yet re-bound
                value = item.get(field.bound_as[1])
            if value is not None:
                found.append((name, field, value))
        return found

    def _subject_of(self, name: str, field: EncryptedField, item: Item) -> str | int:
        """The item's subject id for ``name`` (in its ``subject`` attribute, a string or an integer).

        Raises:
            ConfigurationError: the item does not have it (set it before writing; read it with the
                item, e.g. in a projection), or it is neither a string nor an integer.
        """
        assert field.subject is not None
        value = item.get(field.subject)
        if value is None:
            raise ConfigurationError(
                f"{self.table}.{name} is encrypted under its item's subject ({field.subject}), which "
                f"this item does not have: set {field.subject} before writing it, and read it with "
                "it (include it in any projection)"
            )
        if "S" in value and isinstance(value["S"], str):
            return value["S"]
        if "N" in value and str(value["N"]).lstrip("-").isdigit():
            return int(value["N"])  # as PynamoDB's NumberAttribute reads it: "5" is subject 5
        raise ConfigurationError(
            f"{self.table}.{name}: subject attribute {field.subject!r} must hold a string or an integer"
        )

    def _plaintext(self, name: str, field: EncryptedField, value: AttributeValue) -> bytes:
        try:
            return values.to_plaintext(field.kind, value)
        except TypeError as exc:
            raise TypeError(f"{self.table}.{name}: {exc}") from None

    def _index_plaintext(self, name: str, field: EncryptedField, value: AttributeValue) -> bytes:
        self._plaintext(name, field, value)  # refuse a wrong type before the normalizer sees it
        if field.normalizer is None:
            return self._plaintext(name, field, value)
        return self._plaintext(name, field, {field.kind: field.normalizer(value[field.kind])})

    def __repr__(self) -> str:
        return f"ItemEncryptor(table={self.table!r}, attributes={sorted(self.fields)})"


def _still_plaintext(field: EncryptedField, value: AttributeValue, place: Place) -> bool:
    """True when a transitional field's stored value is its old plaintext (adoption's rule,
    :func:`.values.ciphertext_in`).

    Raises:
        DecryptionError: a damaged ciphertext, or a plaintext of another type than the field's.
    """
    try:
        if values.ciphertext_in(field.kind, value) is not None:
            return False
        values.to_plaintext(field.kind, value)
    except (DamagedCiphertext, TypeError):
        raise DecryptionError(**place.where()) from None
    return True
