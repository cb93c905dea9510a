"""PynamoDB attributes: an encrypted wrapper around another attribute, and its blind index.

An :class:`EncryptedAttribute` is stored as DynamoDB binary (``B``) holding a format v1
ciphertext (docs/format.md) bound to ``Place(table, attribute, row=<item key>)``. It works only
inside an :class:`~fieldcrypt.pynamodb.EncryptedModel`, which tells it which item it belongs to.
Comparisons on it cannot work on ciphertext (every value has a fresh random nonce), so they
raise :class:`~fieldcrypt.errors.QueryNotSupportedError` instead of silently matching nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from pynamodb.attributes import (
    Attribute,
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.constants import BINARY
from pynamodb.expressions.operand import Path, Value
from pynamodb.expressions.update import SetAction

from fieldcrypt import index_records
from fieldcrypt.column import open_at
from fieldcrypt.dynamodb import tenancy, values
from fieldcrypt.dynamodb.prepared import AttributePaths
from fieldcrypt.errors import ConfigurationError, DamagedCiphertext, DecryptionError, QueryNotSupportedError
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, encode_row_key, old_names
from fieldcrypt.pynamodb import _compat, binding
from fieldcrypt.pynamodb.values import codec_for
from fieldcrypt.registry import get_keyring


def _flag(inner: Attribute[Any], name: str) -> bool:
    """``hash_key``, ``range_key`` or ``null`` as the inner attribute was declared."""
    # A MapAttribute not (yet) attached to a class keeps its Attribute arguments aside.
    if isinstance(inner, MapAttribute) and _compat.is_attribute_container(inner):
        return bool(inner.attribute_kwargs.get(name))
    attribute = {"hash_key": "is_hash_key", "range_key": "is_range_key"}.get(name, name)
    return bool(getattr(inner, attribute))  # is_hash_key, is_range_key, null: public on every Attribute


_T = TypeVar("_T")

if TYPE_CHECKING:
    from fieldcrypt.tenants import TenantKeyrings


class EncryptedAttribute(Attribute[_T], Generic[_T]):
    """An attribute whose value is encrypted client-side before it reaches DynamoDB.

    Typed like the attribute it wraps: ``EncryptedAttribute(UnicodeAttribute(), keyring="pii")`` is
    an ``Attribute[str]``, so type checkers refuse ``patient.ssn = 123``.

    Args:
        inner: the attribute describing the plaintext (``UnicodeAttribute()``, ``MapAttribute()``...).
        keyring: a registered keyring's name (resolved at first use) or a :class:`Keyring`; with
            ``tenant``, a registered :class:`~fieldcrypt.TenantKeyrings`' name (or the object).
        tenant: the Python name of the model's attribute holding the tenant id: each item's value
            is encrypted under that tenant's keyring, chosen before the write (docs/tenants.md).
        null: allow ``None`` (stored as an absent attribute); defaults to the inner attribute's.
        attr_name: the DynamoDB attribute name, if not the Python one.
        bound_as: ``(old_table, old_attribute)`` after a table or attribute rename: values written
            before it stay bound to the old names and read through a second try at that place,
            and an item lacking this attribute reads ``old_attribute`` instead (an attribute rename
            not yet re-bound). Writes go to the new names only. ``fieldcrypt rebind`` moves the old
            values; then drop ``bound_as`` (docs/dynamodb.md, "Schema changes").
        subject: the Python name of the (plaintext) attribute holding each item's subject (a user
            or customer id): the value is then encrypted under that subject's own key, erased
            with ``Keyring.shred_subject`` (docs/rotation.md, "Erasing one subject").
        transitional: while ``fieldcrypt encrypt-column dynamodb:TABLE.ATTRIBUTE`` adopts the
            attribute, also read its old plaintext values (as the inner attribute reads them);
            writes are always encrypted, and ``Model.lookup`` is refused (plaintext items have no
            token yet). For Unicode, Number, Binary, Boolean, Map and List attributes (whose bytes
            adoption writes). Drop it once ``fieldcrypt status`` shows no plaintext left
            (docs/dynamodb.md, "Adopting plaintext attributes").

    Raises:
        ConfigurationError: an unsupported inner type, or an inner hash/range key.
    """

    attr_type = BINARY

    def __init__(
        self,
        inner: Attribute[_T],
        *,
        keyring: str | Keyring | TenantKeyrings,
        tenant: str | None = None,
        null: bool | None = None,
        attr_name: str | None = None,
        bound_as: tuple[str, str] | None = None,
        subject: str | None = None,
        transitional: bool = False,
    ) -> None:
        if not isinstance(inner, Attribute):
            raise ConfigurationError("EncryptedAttribute wraps a PynamoDB attribute, e.g. UnicodeAttribute()")
        if _flag(inner, "hash_key") or _flag(inner, "range_key"):
            raise ConfigurationError(
                "an encrypted attribute cannot be a hash or range key: its ciphertext changes on every "
                "write, so DynamoDB could never find the item; keep the key in clear, or add a "
                "BlindIndexAttribute and a GSI for lookups by value"
            )
        if tenant is not None:
            tenancy.check_declaration(keyring, tenant, "EncryptedAttribute")
        elif not isinstance(keyring, str | Keyring):
            raise ConfigurationError("keyring must be a registered keyring's name or a Keyring")
        if subject is not None and (not isinstance(subject, str) or not subject):
            raise ConfigurationError("subject must be the name of the attribute holding the subject id")
        if subject is not None and bound_as is not None:
            raise ConfigurationError("subject and bound_as together are not supported yet: rebind first")
        self.subject = subject
        if transitional and not isinstance(inner, _ADOPTABLE):
            raise ConfigurationError(
                f"transitional=True reads plaintext of {', '.join(a.__name__ for a in _ADOPTABLE)} "
                f"attributes (what encrypt-column adopts), not of a {type(inner).__name__}"
            )
        self.inner = inner
        self.tenant = tenant
        self.transitional = bool(transitional)
        self.codec = codec_for(inner)
        self._keyring = keyring
        self.bound_as = old_names(bound_as, "attribute")
        self._column_places: dict[str, Place] = {}
        # Per table (a model's, or each subclass's): the prepared per-value paths.
        self._paths: dict[str, AttributePaths] = {}
        self._text = type(inner) is UnicodeAttribute  # str: encoded without the codec's frames
        # One keyring for every item and no subject or rename: the shortest per-value path.
        self._one_keyring = tenant is None and subject is None and self.bound_as is None
        super().__init__(null=_flag(inner, "null") if null is None else null, attr_name=attr_name)

    @property
    def keyring(self) -> Keyring:
        """The one keyring of an attribute without ``tenant`` (see :meth:`keyring_for`)."""
        if self.tenant is not None:
            raise ConfigurationError(
                f"{self.attr_name} is encrypted per tenant ({self.tenant}): its keyring depends on the item"
            )
        keyring = self._keyring
        return get_keyring(keyring) if isinstance(keyring, str) else keyring  # type: ignore[return-value]

    def keyring_for(self, tenant: Any) -> Keyring:
        """The keyring of an item whose tenant attribute holds ``tenant`` (ignored without ``tenant=``).

        Raises:
            ConfigurationError: a per-tenant attribute of an item without its tenant.
        """
        if self.tenant is None:
            return self.keyring
        where = f"encrypted attribute {self.attr_name!r}"
        return tenancy.keyring_for(self._keyring, tenant, attribute=self.tenant, where=where)  # type: ignore[arg-type]

    # -- values -----------------------------------------------------------------------------

    def serialize(self, value: Any) -> bytes:
        # Runs per value: the binding checked and the paths found inline (each call costs).
        bound = binding.now()
        # (bound.model is always an EncryptedModel: only its hooks set a binding)
        if bound is None or bound.model._fieldcrypt_encrypted.get(self.attr_name) is not self:  # type: ignore[attr-defined]
            bound = self._bound()  # raises, saying why
        if self._text and type(value) is str:
            data = value.encode("utf-8")  # what TextCodec.to_bytes does after its type check
        else:
            data = self.plaintext(value, bound.table)  # a wrong type fails before any key is used
        row = bound.row if bound.row is not None else bound.known_row()
        paths = self._paths.get(bound.table) or self._paths_for(bound.table)
        if self._one_keyring:
            encoded = bound.encoded_row
            keyring = paths.fixed()  # type: ignore[misc]  # set for one keyring
            return paths.seal(keyring, data, row, encode_row_key(row) if encoded is None else encoded)
        keyring = paths.keyring(None if self.tenant is None else bound.tenant(self.tenant))
        if self.subject is not None:
            subject = bound.subject(self.attr_name, self.subject)
            return keyring.encrypt_for_subject(subject, data, bound.place(self.attr_name))
        encoded = bound.encoded_row
        return paths.seal(keyring, data, row, encode_row_key(row) if encoded is None else encoded)

    def _paths_for(self, table: str) -> AttributePaths:
        paths = self._paths.get(table)
        if paths is None:
            where = f"encrypted attribute {self.attr_name!r}"
            paths = AttributePaths(self._keyring, table, self.attr_name, tenant=self.tenant, where=where)
            self._paths[table] = paths
        return paths

    def _keyring_of(self, bound: binding.Binding) -> Keyring:
        return self.keyring if self.tenant is None else self.keyring_for(bound.tenant(self.tenant))

    def plaintext(self, value: Any, table: str) -> bytes:
        """The bytes that get encrypted for ``value``.

        Raises:
            TypeError: a value of another type (named with the table and attribute).
        """
        if self._text and type(value) is str:
            return value.encode("utf-8")  # what TextCodec.to_bytes does after its type check
        try:
            return self.codec.to_bytes(value)
        except TypeError as exc:
            raise TypeError(f"{table}.{self.attr_name}: {exc}") from None

    def deserialize(self, value: Any) -> Any:
        if type(value) is _Plaintext:
            return self._read_plaintext(value.stored)
        bound = binding.now()
        # (bound.model is always an EncryptedModel: only its hooks set a binding)
        if bound is None or bound.model._fieldcrypt_encrypted.get(self.attr_name) is not self:  # type: ignore[attr-defined]
            bound = self._bound()  # raises, saying why
        blob = value if type(value) is bytes else bytes(value)
        if self.subject is None and self.bound_as is None:
            row = bound.row if bound.row is not None else bound.known_row()
            paths = self._paths.get(bound.table) or self._paths_for(bound.table)
            if self._one_keyring:
                plaintext = paths.reader(blob, row)  # type: ignore[misc]  # set for one keyring
            else:
                plaintext = paths.open(blob, row, bound.tenant(self.tenant))  # type: ignore[arg-type]
        else:
            place = bound.place(self.attr_name)
            keyring = self._keyring_of(bound)
            if self.subject is not None:
                subject = bound.subject(self.attr_name, self.subject)
                plaintext = keyring.decrypt_for_subject(subject, blob, place)
            else:  # renamed: its own place first, then the old one (values not yet re-bound)
                assert self.bound_as is not None
                plaintext = open_at(keyring, blob, (place, Place(*self.bound_as, place.row)))
        try:
            return plaintext.decode("utf-8") if self._text else self.codec.from_bytes(plaintext)
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            # Authentic but not a value of this type: the attribute's type changed under it.
            raise DecryptionError(**bound.place(self.attr_name).where()) from None

    def get_value(self, value: dict[str, Any]) -> Any:
        if self.transitional:
            return self._transitional_value(value)
        if BINARY not in value:
            # A plaintext (or other non-binary) value where a ciphertext belongs: never pass it on.
            raise DecryptionError(**self._bound().place(self.attr_name).where())
        return value[BINARY]

    def _transitional_value(self, value: dict[str, Any]) -> Any:
        """The ciphertext bytes, or the old plaintext marked as such (adoption's rule)."""
        try:
            blob = values.ciphertext_in(self.inner.attr_type, value)
        except DamagedCiphertext:
            raise DecryptionError(**self._bound().place(self.attr_name).where()) from None
        return _Plaintext(value) if blob is None else blob

    def _read_plaintext(self, stored: dict[str, Any]) -> Any:
        """A pre-adoption value, read from the bytes adoption will encrypt for it, so it reads the
        same before and after."""
        try:
            return self.codec.from_bytes(values.to_plaintext(self.inner.attr_type, stored))
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise DecryptionError(**self._bound().place(self.attr_name).where()) from None

    def blind_token(
        self, value: Any, table: str, normalizer: Callable[[Any], Any], tenant: Any = None
    ) -> bytes:
        """The blind-index token stored for ``value`` (the newest blind-index key of the
        attribute's keyring: the item's tenant's, for a per-tenant attribute)."""
        plain = self.plaintext(value, table)  # refuse a wrong type before the normalizer sees it
        if normalizer is not _same:
            plain = self.plaintext(normalizer(value), table)
        return self._paths_for(table).token(plain, None if normalizer is _same else normalizer, tenant)

    def blind_candidates(
        self, value: Any, table: str, normalizer: Callable[[Any], Any], tenant: Any = None
    ) -> list[bytes]:
        """Every token ``value`` may be stored under (within ``tenant``; after a rename, also the
        tokens at the old place that items not yet re-bound keep); never creates a key."""
        if self.transitional:
            raise QueryNotSupportedError(
                f"{table}.{self.attr_name} is being adopted (transitional=True): items still in "
                "plaintext have no blind-index token, so a lookup would miss them; look up once "
                "encrypt-column has finished and transitional is dropped"
            )
        self.plaintext(value, table)
        places = [self._column_place(table)]
        if self.bound_as is not None:
            places.append(Place(*self.bound_as))
        plain = self.plaintext(normalizer(value), table)
        keyring = self.keyring_for(tenant)
        tokens: list[bytes] = []
        for place in places:
            index_records.check(keyring, place, None if normalizer is _same else normalizer, writing=False)
            tokens.extend(keyring.blind_index_candidates(plain, place))
        return tokens

    @property
    def renamed_from(self) -> str | None:
        """The attribute's old DynamoDB name when ``bound_as`` names another attribute."""
        if self.bound_as is None or self.bound_as[1] == self.attr_name:
            return None
        return self.bound_as[1]

    def _column_place(self, table: str) -> Place:
        """The row-less place tokens are computed for (one per table: built once, not per item)."""
        place = self._column_places.get(table)
        if place is None:
            place = self._column_places[table] = Place(table, self.attr_name)
        return place

    def _bound(self) -> binding.Binding:
        name = self.attr_name
        bound = binding.now()
        if bound is None:
            bound = binding.current(name)  # raises: not inside an EncryptedModel's hook
        if getattr(bound.model, "_fieldcrypt_encrypted", {}).get(name) is not self:
            raise ConfigurationError(
                f"encrypted attribute {name!r} must be a top-level attribute of an "
                "EncryptedModel (not nested in a MapAttribute or used on a plain Model)"
            )
        return bound

    # -- expressions ------------------------------------------------------------------------

    def set(self, value: Any) -> EncryptedSet:
        """An update action; :meth:`EncryptedModel.update` encrypts it for the item."""
        return EncryptedSet(self, value)

    def _refuse(self, *_: Any, **__: Any) -> NoReturn:
        raise QueryNotSupportedError(
            f"attribute {self.attr_name!r} is encrypted: conditions, filters and arithmetic on it cannot "
            "work on ciphertext; look items up by value with Model.lookup(attribute, value) through a "
            "BlindIndexAttribute, or compare after reading"
        )

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    between = is_in = startswith = contains = __getitem__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __or__ = _refuse
    append = prepend = add = delete = _refuse
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        subject = "" if self.subject is None else f", subject={self.subject!r}"
        tenant = "" if self.tenant is None else f", tenant={self.tenant!r}"
        return (
            f"EncryptedAttribute({type(self.inner).__name__}(), keyring={self._keyring!r}{subject}{tenant})"
        )


class _Plaintext:
    """A transitional attribute's pre-adoption value, passed from ``get_value`` to ``deserialize``."""

    __slots__ = ("stored",)

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored


_ADOPTABLE = (
    UnicodeAttribute,
    NumberAttribute,
    BinaryAttribute,
    BooleanAttribute,
    MapAttribute,
    ListAttribute,
)


class EncryptedSet(SetAction):
    """``Model.attr.set(value)`` for an encrypted attribute: holds the plaintext until
    :meth:`EncryptedModel.update` encrypts it for its item (only the model knows the item key)."""

    def __init__(self, attribute: EncryptedAttribute[Any], value: Any) -> None:
        super().__init__(Path(attribute), Value({"NULL": True}))
        self.attribute = attribute
        self.plaintext = value

    def serialize(
        self, placeholder_names: dict[str, str], expression_attribute_values: dict[str, str]
    ) -> str:
        raise ConfigurationError(
            f"an update of encrypted attribute {self.attribute.attr_name!r} must go through "
            "EncryptedModel.update() or a transaction's update() with an EncryptedModel instance"
        )

    def __repr__(self) -> str:
        return f"{self.attribute.attr_name} = <encrypted>"


def _same(value: Any) -> Any:
    return value


class BlindIndexAttribute(BinaryAttribute):
    """An equality token (truncated HMAC) for an encrypted attribute, kept by the model.

    Declare it on the model with ``of=`` the encrypted attribute's Python name, and as the hash
    key of a ``GlobalSecondaryIndex`` to look items up with ``Model.lookup(attribute, value)``.
    ``normalizer`` maps a value before indexing (e.g. ``lambda s: s.replace("-", "")``), so equal
    values under it match. An index of a ``BooleanAttribute`` is refused when the model is defined
    (one known item names every item sharing its token) unless ``allow_low_cardinality_index=True``.
    """

    def __init__(
        self,
        of: str | None = None,
        *,
        normalizer: Callable[[Any], Any] = _same,
        hash_key: bool = False,
        range_key: bool = False,
        attr_name: str | None = None,
        allow_low_cardinality_index: bool = False,
    ) -> None:
        super().__init__(
            hash_key=hash_key, range_key=range_key, null=True, attr_name=attr_name, legacy_encoding=False
        )
        self.of = of
        self.normalizer = normalizer
        self.allow_low_cardinality_index = allow_low_cardinality_index

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, bytes):
            raise QueryNotSupportedError(
                f"blind index {self.attr_name!r} holds tokens, not values: "
                "use Model.lookup(attribute, value) to query through it"
            )
        return value
