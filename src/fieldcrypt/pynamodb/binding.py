"""Which item an encrypted attribute is being (de)serialised for.

PynamoDB's ``Attribute.serialize`` sees only the value, never the item, so the
model-level hooks of :class:`~fieldcrypt.pynamodb.EncryptedModel` (``serialize``,
``deserialize``, ``from_raw_data``) set the item's table and key here for the duration of the
call, and each :class:`~fieldcrypt.pynamodb.EncryptedAttribute` reads it. A context variable
keeps threads and asyncio tasks apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any, NamedTuple

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.place import Place, RowKey


class Binding(NamedTuple):
    """The table and item key, plus the model class, of the item being (de)serialised.

    A named tuple: one is made per item read or written, and it is cheaper to build than a
    frozen dataclass while just as immutable.
    """

    model: type
    table: str
    row: RowKey | None
    # The item's subject attributes (``EncryptedAttribute(subject=...)``) by Python name, when the
    # model has any: the subject whose key encrypts such an attribute.
    subjects: Mapping[str, Any] | None = None

    def subject(self, attribute: str, name: str) -> Any:
        """The item's subject for ``attribute`` (its ``subject`` option names attribute ``name``).

        Raises:
            ConfigurationError: the item does not have it (not set before a write; not read back,
                e.g. left out of a projection).
        """
        value = None if self.subjects is None else self.subjects.get(name)
        if value is None:
            raise ConfigurationError(
                f"{self.model.__name__}.{attribute} is encrypted under its item's subject ({name}), "
                f"which this item does not have: set {name} before writing it, and read it with it "
                "(include it in any projection)"
            )
        return value

    # The item's tenant ids by the Python name of each tenant attribute (models declaring
    # EncryptedAttribute(..., tenant=...) only): they choose the keyring.
    tenants: Mapping[str, Any] | None = None

    def tenant(self, attribute: str) -> Any:
        """The item's tenant id held in ``attribute`` (None when the item has none)."""
        return None if self.tenants is None else self.tenants.get(attribute)

    # ``encode_row_key(row)`` when the model computed it once for the item (writes), else None.
    encoded_row: bytes | None = None

    def place(self, attribute: str) -> Place:
        return Place(self.table, attribute, self.known_row())

    def known_row(self) -> RowKey:
        """The item's key; a clear error while it is not set (every value is bound to it)."""
        if self.row is None:
            raise ConfigurationError(
                f"{self.model.__name__}: set the item's hash (and range) key before writing encrypted "
                "attributes; every value is bound to its item's key"
            )
        return self.row


_current: ContextVar[Binding | None] = ContextVar("fieldcrypt_pynamodb_binding", default=None)
# The model's hooks set and reset it themselves (``token = enter(binding)`` ... ``leave(token)``):
# per item, two calls are cheaper than a context manager object.
enter, leave, now = _current.set, _current.reset, _current.get


class bound:  # lower case: used like the function it replaced, ``with bound(binding):``
    """Make ``binding`` current for the duration of a ``with`` block (per item: a plain class,
    cheaper than a generator-based context manager)."""

    __slots__ = ("_binding", "_token")
    _token: Token[Binding | None]

    def __init__(self, binding: Binding) -> None:
        self._binding = binding

    def __enter__(self) -> Binding:
        self._token = _current.set(self._binding)
        return self._binding

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


def current(attribute: str) -> Binding:
    """The active binding, or a clear error when an encrypted value is used outside a model."""
    binding = _current.get()
    if binding is None:
        raise ConfigurationError(
            f"encrypted attribute {attribute!r} can only be read or written through an EncryptedModel "
            "(save, update, batch_write, transactions, get, query, scan); PynamoDB calls that bypass "
            "the model (to_dynamodb_dict, to_simple_dict, a plain Model) are refused"
        )
    return binding
