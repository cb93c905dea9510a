"""EncryptedModel: the PynamoDB model base that binds every encrypted attribute to its item.

PynamoDB serialises an attribute without its item, so this class overrides the model-level
methods every read and write goes through (``serialize`` for save, batch_write and transactions;
``from_raw_data`` for get, batch_get, query and scan; ``deserialize`` for refresh and update) to
set the item's table and key for the duration of the call (see :mod:`.binding`). It also keeps
blind indexes in step with their attributes and refuses models that could not work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from pynamodb.attributes import Attribute, BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Path, Value
from pynamodb.expressions.update import Action, RemoveAction, SetAction
from pynamodb.indexes import Index
from pynamodb.models import MetaModel, Model

from fieldcrypt import audit
from fieldcrypt.cardinality import check_index_cardinality
from fieldcrypt.dynamodb import wire
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.place import RowKey, encode_row_key
from fieldcrypt.pynamodb import _compat
from fieldcrypt.pynamodb.attributes import BlindIndexAttribute, EncryptedAttribute, EncryptedSet
from fieldcrypt.pynamodb.binding import Binding, bound, enter, leave
from fieldcrypt.tenant_ids import canonical_tenant

_M = TypeVar("_M", bound="EncryptedModel")


def _tenant_attributes(
    model: str, attributes: dict[str, Attribute[Any]]
) -> tuple[tuple[str, Attribute[Any]], ...]:
    """The attributes per-tenant encrypted attributes name with ``tenant=``, checked.

    Raises:
        ConfigurationError: a tenant attribute that is missing, encrypted, or neither a string
            nor a number (the tenant must be readable in clear to choose the keyring).
    """
    named: dict[str, Attribute[Any]] = {}
    for name, attr in attributes.items():
        if not isinstance(attr, EncryptedAttribute) or attr.tenant is None:
            continue
        tenant = attributes.get(attr.tenant)
        if not isinstance(tenant, UnicodeAttribute | NumberAttribute):
            raise ConfigurationError(
                f"{model}.{name}: tenant={attr.tenant!r} must name a UnicodeAttribute or NumberAttribute "
                f"of {model} holding the tenant id in clear"
            )
        named[attr.tenant] = tenant
    return tuple(named.items())


class EncryptedModelMeta(MetaModel):
    """Checks an EncryptedModel subclass at class definition: clear errors, not failures later."""

    def __init__(cls, name: str, bases: Any, namespace: Any, discriminator: Any = None) -> None:
        super().__init__(name, bases, namespace, discriminator)
        attributes: dict[str, Attribute[Any]] = cls.get_attributes()  # type: ignore[attr-defined]
        encrypted = {a.attr_name: a for a in attributes.values() if isinstance(a, EncryptedAttribute)}
        blind = {a.attr_name: a for a in attributes.values() if isinstance(a, BlindIndexAttribute)}
        for index_name, blind_attr in blind.items():
            target = attributes.get(blind_attr.of or "")
            if not isinstance(target, EncryptedAttribute):
                raise ConfigurationError(
                    f"{name}.{index_name}: BlindIndexAttribute(of=...) must name an EncryptedAttribute "
                    f"of {name} (got {blind_attr.of!r})"
                )
            if isinstance(target.inner, BooleanAttribute):
                check_index_cardinality(
                    f"{name}.{blind_attr.of} (a BooleanAttribute, indexed by {index_name})",
                    2,
                    allowed=blind_attr.allow_low_cardinality_index,
                )
        for index in _compat.indexes(cls).values():
            for key in index.Meta.attributes.values():
                if (key.is_hash_key or key.is_range_key) and key.attr_name in encrypted:
                    raise ConfigurationError(
                        f"{name}: index {index.Meta.index_name!r} cannot be keyed on encrypted attribute "
                        f"{key.attr_name!r}; key it on a BlindIndexAttribute instead"
                    )
        cls._fieldcrypt_encrypted = encrypted
        # Attribute renames (bound_as naming another attribute): new DynamoDB name -> old one.
        cls._fieldcrypt_renamed = {new: a.renamed_from for new, a in encrypted.items() if a.renamed_from}
        declared = {a.attr_name for a in attributes.values()}
        for new, old in cls._fieldcrypt_renamed.items():
            if old in declared:
                raise ConfigurationError(
                    f"{name}.{new}: bound_as names attribute {old!r}, which {name} still declares; "
                    "an item must hold a renamed value under one name only"
                )
        cls._fieldcrypt_blind = blind
        # Python names, computed once: serialize runs per item and should not rescan attributes.
        cls._fieldcrypt_encrypted_names = tuple(
            n for n, a in attributes.items() if isinstance(a, EncryptedAttribute)
        )
        cls._fieldcrypt_blind_names = tuple(
            n for n, a in attributes.items() if isinstance(a, BlindIndexAttribute)
        )
        # Each blind index with the encrypted attribute it indexes (of= checked above).
        cls._fieldcrypt_blind_sources = tuple(
            (n, a, attributes[a.of or ""])
            for n, a in attributes.items()
            if isinstance(a, BlindIndexAttribute)
        )
        for index_name, _, source in cls._fieldcrypt_blind_sources:
            # A token is an HMAC under the keyring's shared index key, not the subject's key: it
            # would outlive the subject's erasure (as the SQL column and the item encryptor refuse).
            if isinstance(source, EncryptedAttribute) and source.subject is not None:
                raise ConfigurationError(
                    f"{name}.{index_name}: a per-subject attribute cannot have a blind index: its "
                    "tokens would survive the subject's shred"
                )
        subjects = {a.subject for a in encrypted.values() if a.subject is not None}
        for subject in sorted(subjects):
            if not isinstance(attributes.get(subject), Attribute) or isinstance(
                attributes[subject], EncryptedAttribute
            ):
                raise ConfigurationError(
                    f"{name}: EncryptedAttribute(subject={subject!r}) must name a plaintext attribute of "
                    f"{name} (the subject chooses the key that reads the rest)"
                )
        # Python name -> attribute of each subject attribute, for the bindings of items.
        cls._fieldcrypt_subjects = {n: attributes[n] for n in sorted(subjects)}
        cls._fieldcrypt_tenants = _tenant_attributes(name, attributes)
        keys = tuple((n, attributes[n]) for n in _compat.key_names(cls) if n is not None)
        cls._fieldcrypt_keys = keys
        cls._fieldcrypt_key_attr_names = [attr.attr_name for _, attr in keys]


class EncryptedModel(Model, metaclass=EncryptedModelMeta):
    """A PynamoDB ``Model`` whose :class:`EncryptedAttribute` values are bound to their item.

    Every ciphertext's associated data names the table, the attribute and the item's hash (and
    range) key, so a value copied to another item or attribute fails to decrypt.
    """

    _fieldcrypt_encrypted: dict[str, EncryptedAttribute[Any]]  # by DynamoDB attribute name
    _fieldcrypt_renamed: dict[str, str]  # renamed encrypted attributes: new DynamoDB name -> old
    _fieldcrypt_blind: dict[str, BlindIndexAttribute]
    _fieldcrypt_encrypted_names: tuple[str, ...]  # Python names
    _fieldcrypt_blind_names: tuple[str, ...]
    _fieldcrypt_blind_sources: tuple[tuple[str, BlindIndexAttribute, EncryptedAttribute[Any]], ...]
    _fieldcrypt_keys: tuple[tuple[str, Attribute[Any]], ...]  # hash (and range) key: Python name, attribute
    _fieldcrypt_key_attr_names: list[str]  # their DynamoDB names
    _fieldcrypt_subjects: dict[str, Attribute[Any]]  # subject attributes by Python name
    _fieldcrypt_tenants: tuple[tuple[str, Attribute[Any]], ...]  # tenant attributes: Python name, attribute

    # -- writes -----------------------------------------------------------------------------

    def serialize(self, null_check: bool = True) -> dict[str, dict[str, Any]]:
        binding = self._binding(encode=True)
        if binding.row is None:
            values = self.attribute_values
            if any(values.get(n) is not None for n in self._fieldcrypt_encrypted_names):
                binding.place("-")  # raises: values cannot be bound to an item without its key
        token = enter(binding)
        try:
            if self._fieldcrypt_blind_names:
                self._refresh_blind_indexes(binding)
            return super().serialize(null_check)
        finally:
            leave(token)

    def update(
        self,
        actions: list[Action],
        condition: Condition | None = None,
        *,
        add_version_condition: bool = True,
    ) -> Any:
        return super().update(
            self._encrypt_actions(actions), condition, add_version_condition=add_version_condition
        )

    def get_update_kwargs_from_instance(
        self,
        actions: list[Action],
        condition: Condition | None = None,
        return_values_on_condition_failure: str | None = None,
        *,
        add_version_condition: bool = True,
    ) -> dict[str, Any]:
        return super().get_update_kwargs_from_instance(
            self._encrypt_actions(actions),
            condition,
            return_values_on_condition_failure,
            add_version_condition=add_version_condition,
        )

    # -- reads ------------------------------------------------------------------------------

    def deserialize(self, attribute_values: dict[str, dict[str, Any]]) -> None:
        cls = type(self)
        attribute_values = cls._under_new_names(attribute_values)
        names = cls._key_attr_names()
        row = wire.row_key(attribute_values, names) if all(n in attribute_values for n in names) else None
        subjects = cls._raw_subjects(attribute_values) if cls._fieldcrypt_subjects else None
        tenants = cls._raw_tenants(attribute_values, self) if cls._fieldcrypt_tenants else None
        row = row if row is not None else self._row()
        token = enter(Binding(cls, cls.Meta.table_name, row, subjects, tenants))
        try:
            super().deserialize(attribute_values)
        finally:
            leave(token)

    @classmethod
    def from_raw_data(cls: type[_M], data: dict[str, Any]) -> _M:
        data = cls._under_new_names(data)
        if data is None:
            return super().from_raw_data(data)
        for name in cls._fieldcrypt_encrypted:
            if name in data:
                break
        else:
            return super().from_raw_data(data)  # nothing to decrypt: no key needed
        row = wire.row_key(data, cls._fieldcrypt_key_attr_names)
        subjects = cls._raw_subjects(data) if cls._fieldcrypt_subjects else None
        tenants = cls._raw_tenants(data) if cls._fieldcrypt_tenants else None
        token = enter(Binding(cls, cls.Meta.table_name, row, subjects, tenants))
        try:
            return super().from_raw_data(data)
        finally:
            leave(token)

    @classmethod
    def lookup(
        cls: type[_M],
        attribute: str | EncryptedAttribute[Any],
        value: Any,
        *,
        tenant: Any = None,
        **query: Any,
    ) -> Iterator[_M]:
        """Items whose encrypted ``attribute`` equals ``value``, through its blind-index GSI.

        A per-tenant attribute (``EncryptedAttribute(..., tenant=...)``) is searched within one
        tenant: ``tenant`` is required, the tokens are that tenant's, and items of another tenant
        are never returned (equal values of two tenants have different tokens).

        Queries once per active blind-index key (two during a blind-index rotation). Extra
        keyword arguments go to ``Index.query`` (``consistent_read`` is not allowed on a GSI).
        Every item is verified: one whose value does not decrypt to ``value`` (normalised) -- a
        copied or colliding token -- is skipped and reported on the ``fieldcrypt.audit`` logger
        as ``blind_index.mismatch`` with its key, so the GSI must project the attribute.

        Raises:
            ConfigurationError: no BlindIndexAttribute for ``attribute``, no GSI keyed on it, or a
                GSI that does not project it (the matches could not be verified); a per-tenant
                attribute searched without ``tenant``, or ``tenant`` for one that is not.
        """
        encrypted = cls._encrypted_named(attribute)
        wanted = cls._searched_tenant(encrypted, tenant)
        blind = [b for b in cls._fieldcrypt_blind.values() if cls.get_attributes()[b.of or ""] is encrypted]
        if not blind:
            raise ConfigurationError(f"{cls.__name__}.{encrypted.attr_name} has no BlindIndexAttribute")
        table = cls.Meta.table_name
        python_name = next(n for n, a in cls.get_attributes().items() if a is encrypted)
        for blind_attr in blind:
            for index in _compat.indexes(cls).values():
                hash_key = _compat.index_hash_key(index)
                if hash_key is not None and hash_key.attr_name == blind_attr.attr_name:
                    _require_projected(cls.__name__, index, encrypted.attr_name)
                    normalizer = blind_attr.normalizer
                    tokens = encrypted.blind_candidates(value, table, normalizer, tenant)
                    searched = encrypted.plaintext(normalizer(value), table) if tokens else b""
                    for token in tokens:
                        for item in index.query(token, **query):
                            found = getattr(item, python_name)
                            if (
                                found is not None
                                and item._tenant_of(encrypted) == wanted
                                and encrypted.plaintext(normalizer(found), table) == searched
                            ):
                                yield item
                            else:
                                row = item._row()
                                audit.blind_index_mismatch(
                                    table, encrypted.attr_name, None if row is None else repr(row)
                                )
                    return
        raise ConfigurationError(
            f"{cls.__name__}: no GlobalSecondaryIndex has blind index {blind[0].attr_name!r} as its hash key"
        )

    # -- internals --------------------------------------------------------------------------

    @classmethod
    def _under_new_names(cls, data: dict[str, Any]) -> dict[str, Any]:
        """An item not yet re-bound after an attribute rename: its old attribute read as the new
        one (bound_as). Items without old names are returned as they are (no copy)."""
        renamed = cls._fieldcrypt_renamed
        if (
            not renamed
            or data is None
            or not any(new not in data and old in data for new, old in renamed.items())
        ):
            return data
        moved = dict(data)
        for new, old in renamed.items():
            if new not in moved and old in moved:
                moved[new] = moved.pop(old)
        return moved

    @classmethod
    def _key_attr_names(cls) -> list[str]:
        return cls._fieldcrypt_key_attr_names  # computed once, by the metaclass

    def _row(self) -> RowKey | None:
        """This item's key as a row, or None while the key is not set yet."""
        values = self.attribute_values  # what each key attribute's descriptor reads, by Python name
        keys = self._fieldcrypt_keys
        if len(keys) == 1 and type(keys[0][1]) is UnicodeAttribute:  # the common key, without the loop
            value = values.get(keys[0][0])
            if type(value) is str and value:
                return value  # what UnicodeAttribute serialises it to and key_part reads back
        parts: list[Any] = []
        for python_name, attr in keys:
            value = values.get(python_name)
            if value is None:
                return None
            if type(attr) is UnicodeAttribute and type(value) is str and value:
                parts.append(value)  # what UnicodeAttribute serialises it to and key_part reads back
            else:
                parts.append(wire.key_part({attr.attr_type: attr.serialize(value)}))
        # As wire.row_key: a one-part key is the bare value.
        return parts[0] if len(parts) == 1 else tuple(parts)

    def _binding(self, *, encode: bool = False) -> Binding:
        """This item's binding; ``encode``: with its key's encoding, computed once for every
        attribute a write seals."""
        row = self._row()
        encoded = encode_row_key(row) if encode and row is not None else None
        subjects = self._fieldcrypt_subjects
        tenants = self._fieldcrypt_tenants
        if not subjects and not tenants:
            return Binding(type(self), self.Meta.table_name, row, None, None, encoded)
        values = self.attribute_values
        subject_values = {name: values.get(name) for name in subjects} if subjects else None
        tenant_values = {name: values.get(name) for name, _ in tenants} if tenants else None
        return Binding(type(self), self.Meta.table_name, row, subject_values, tenant_values, encoded)

    @classmethod
    def _raw_subjects(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The subject attributes of an item as read (wire form), as their Python values."""
        found: dict[str, Any] = {}
        for name, attribute in cls._fieldcrypt_subjects.items():
            raw = data.get(attribute.attr_name)
            if raw is not None:
                found[name] = attribute.deserialize(attribute.get_value(raw))
        return found

    @classmethod
    def _raw_tenants(cls, data: dict[str, Any], item: EncryptedModel | None = None) -> dict[str, Any]:
        """The tenant ids of a raw item (or, for attributes it lacks, of ``item`` as it stands)."""
        tenants: dict[str, Any] = {}
        for name, attr in cls._fieldcrypt_tenants:
            raw = data.get(attr.attr_name)
            if raw is not None:
                tenants[name] = attr.deserialize(attr.get_value(raw))
            elif item is not None:
                tenants[name] = getattr(item, name)
        return tenants

    @classmethod
    def _searched_tenant(cls, encrypted: EncryptedAttribute[Any], tenant: Any) -> str | None:
        """The canonical tenant a lookup searches (None for an attribute that is not per tenant)."""
        if encrypted.tenant is None:
            if tenant is not None:
                raise ConfigurationError(
                    f"{cls.__name__}.{encrypted.attr_name} is not encrypted per tenant: drop tenant="
                )
            return None
        if tenant is None:
            raise ConfigurationError(
                f"{cls.__name__}.{encrypted.attr_name} is encrypted per tenant ({encrypted.tenant}): "
                "a lookup runs within one tenant, pass tenant="
            )
        return canonical_tenant(tenant)

    def _tenant_of(self, encrypted: EncryptedAttribute[Any]) -> str | None:
        """This item's canonical tenant for ``encrypted`` (None for an attribute not per tenant;
        an unusable id never equals a searched one)."""
        if encrypted.tenant is None:
            return None
        found = getattr(self, encrypted.tenant)
        try:
            return None if found is None else canonical_tenant(found)
        except ConfigurationError:
            return None

    def _refresh_blind_indexes(self, binding: Binding) -> None:
        table = binding.table
        values = self.attribute_values  # by Python name, as the attributes' descriptors keep them
        for python_name, attr, source in self._fieldcrypt_blind_sources:
            value = values.get(attr.of or "")
            tenant = None if source.tenant is None else binding.tenant(source.tenant)
            token = None if value is None else source.blind_token(value, table, attr.normalizer, tenant)
            values[python_name] = token

    def _encrypt_actions(self, actions: Sequence[Action]) -> list[Action]:
        """Turn encrypted ``set`` actions into ciphertext for this item, and keep blind indexes in step."""
        resolved: list[Action] = []
        binding = self._binding()
        for action in actions:
            target = self._encrypted_target(action)
            if target is None:
                resolved.append(action)
                continue
            value = action.plaintext if isinstance(action, EncryptedSet) else None
            with bound(binding):
                if value is None:
                    resolved.append(RemoveAction(Path(target)))
                else:
                    resolved.append(SetAction(Path(target), Value({"B": target.serialize(value)})))
                old = self._fieldcrypt_renamed.get(target.attr_name)
                if old is not None:  # a renamed attribute's old copy must not outlive a write
                    resolved.append(RemoveAction(Path([old])))
                for blind in self._blind_indexes_of(target):
                    if value is None:
                        resolved.append(RemoveAction(Path(blind)))
                    else:
                        tenant = None if target.tenant is None else binding.tenant(target.tenant)
                        token = target.blind_token(value, binding.table, blind.normalizer, tenant)
                        resolved.append(SetAction(Path(blind), Value({"B": token})))
        return resolved

    def _encrypted_target(self, action: Action) -> EncryptedAttribute[Any] | None:
        if isinstance(action, EncryptedSet):
            if self._fieldcrypt_encrypted.get(action.attribute.attr_name) is not action.attribute:
                raise ConfigurationError(
                    f"{type(self).__name__} has no encrypted attribute {action.attribute.attr_name!r}"
                )
            return action.attribute
        if isinstance(action, RemoveAction):
            path = action.values[0]
            if isinstance(path, Path) and len(path.path) == 1:
                return self._fieldcrypt_encrypted.get(path.path[0])
        return None

    def _blind_indexes_of(self, target: EncryptedAttribute[Any]) -> list[BlindIndexAttribute]:
        attributes = self.get_attributes()
        return [b for b in self._fieldcrypt_blind.values() if attributes[b.of or ""] is target]

    @classmethod
    def _encrypted_named(cls, attribute: str | EncryptedAttribute[Any]) -> EncryptedAttribute[Any]:
        found = cls.get_attributes().get(attribute) if isinstance(attribute, str) else attribute
        if not isinstance(found, EncryptedAttribute):
            raise ConfigurationError(f"{cls.__name__} has no encrypted attribute {attribute!r}")
        return found

    def __repr__(self) -> str:
        hidden = set(self._fieldcrypt_encrypted) | set(self._fieldcrypt_blind)
        attributes = self.get_attributes()
        fields = ", ".join(
            f"{name}=<encrypted>" if attributes[name].attr_name in hidden else f"{name}={value!r}"
            for name, value in self.attribute_values.items()
        )
        return f"{type(self).__name__}({fields})"


def _require_projected(model: str, index: Index[Any], attribute: str) -> None:
    projection = index.Meta.projection
    if projection.projection_type == "ALL":
        return
    if attribute in (getattr(projection, "non_key_attributes", None) or ()):
        return
    raise ConfigurationError(
        f"{model}: GSI {index.Meta.index_name!r} does not project {attribute!r}, so lookup cannot "
        "verify that a match holds the searched value; project it (AllProjection or "
        "IncludeProjection([...]))"
    )
