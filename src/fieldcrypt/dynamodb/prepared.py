"""One encrypted DynamoDB attribute's per-value paths, resolved once per attribute and table.

The PynamoDB adapter (:class:`~fieldcrypt.pynamodb.EncryptedAttribute`) and the item encryptor
(:class:`~fieldcrypt.dynamodb.ItemEncryptor`) seal, open and index every value for its item.
What does not change from one value to the next is resolved here once per attribute and table,
as the SQL column paths do (:mod:`fieldcrypt.reading`, :mod:`fieldcrypt.indexing`):

- the keyring, or the tenant family, followed across ``register`` (:func:`fieldcrypt.registry.follow`);
- for writes, the attribute's place encoding up to the row (per keyring namespace): each value's
  associated data is that and the item's key encoding, computed once per item by the caller;
- for reads, a row reader (per data key: the cached key and the associated data up to the row);
- for blind-index tokens, an indexer per normalizer (the checked index record, the current index
  key, the prepared HMAC state).

Per value there remain what carries the guarantees: the key's use and age bounds and the
encryption budget (:meth:`Keyring.encrypt_encoded`), AES-GCM, the HMAC, and the checks the
reader and indexer make. While metrics count a keyring's values (its ``encrypt`` wrapped),
writes go through ``encrypt`` so every value is counted; readers do the same on their own.

A per-tenant attribute's keyring is chosen per item by :class:`~fieldcrypt.TenantKeyrings`, which
decides what is held (least recently used, ``forget``): writes keep only the place encoding per
namespace, and reads and tokens keep their prepared state in the held keyring's scratch
(:mod:`fieldcrypt.following`), so it is dropped with that keyring and a value never opens under
another tenant's keyring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fieldcrypt import indexing, reading, registry
from fieldcrypt.dynamodb import tenancy
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, RowKey

if TYPE_CHECKING:
    from fieldcrypt.tenants import TenantKeyrings

# Namespaces one attribute remembers a place encoding for (keyrings of one family share theirs).
MAX_NAMESPACES = 64


class AttributePaths:
    """Seal, open and index the values of one encrypted attribute of one table.

    Args:
        keyring: a registered keyring's name or a :class:`Keyring`; with ``tenant``, a
            registered :class:`~fieldcrypt.TenantKeyrings`' name or the object.
        table: the table name; attribute: the DynamoDB attribute name.
        tenant: the attribute holding each item's tenant id (None: one keyring for every item).
        where: how errors name the attribute.
    """

    __slots__ = (
        "_family",
        "_heads",
        "_indexers",
        "_source",
        "_tenant_reader",
        "column",
        "fixed",
        "reader",
        "tenant",
        "where",
    )

    def __init__(
        self,
        keyring: str | Keyring | TenantKeyrings,
        table: str,
        attribute: str,
        *,
        tenant: str | None,
        where: str,
    ) -> None:
        self.column = Place(table, attribute)
        self.tenant = tenant
        self.where = where
        self._source = keyring
        self._heads: dict[str | None, bytes] = {}
        self._indexers: dict[Callable[[Any], Any] | None, Callable[..., bytes]] = {}
        self.fixed: Callable[[], Keyring] | None = None
        self._family: Callable[[], TenantKeyrings] | None = None
        self.reader: Callable[[bytes, RowKey], Any] | None = None
        self._tenant_reader: Callable[..., Any] | None = None
        if tenant is None:
            fixed = keyring
            self.fixed = registry.follow(keyring) if isinstance(keyring, str) else lambda: fixed  # type: ignore[assignment]
            self.reader = reading.row_reader(keyring, self.column, None)
        else:
            family = keyring
            self._family = registry.follow_tenants(keyring) if isinstance(keyring, str) else lambda: family  # type: ignore[assignment]
            # Per held tenant keyring (kept in the family's scratch, dropped with the keyring).
            self._tenant_reader = reading.row_reader(keyring, self.column, None, per_tenant=True)

    def keyring(self, tenant: Any = None) -> Keyring:
        """The keyring of an item whose tenant attribute holds ``tenant`` (ignored without one).

        Raises:
            ConfigurationError: a per-tenant attribute of an item without its tenant, or an
                unusable tenant id.
        """
        if self.fixed is not None:
            return self.fixed()
        assert self._family is not None
        assert self.tenant is not None
        return tenancy.keyring_for(self._family(), tenant, attribute=self.tenant, where=self.where)

    def seal(self, keyring: Keyring, data: bytes, row: RowKey, encoded_row: bytes) -> bytes:
        """``keyring.encrypt(data, Place(table, attribute, row))``; ``encoded_row`` is
        ``encode_row_key(row)``, computed once per item."""
        if "encrypt" in vars(keyring):  # metrics count this keyring's values: through encrypt
            return keyring.encrypt(data, Place(self.column.table, self.column.column, row))
        head = self._heads.get(keyring.namespace)
        if head is None:
            head = self._head(keyring)
        return keyring.encrypt_encoded(data, head + encoded_row)

    def _head(self, keyring: Keyring) -> bytes:
        # A row-less place ends in 0x00; a row's in 0x01 and the row key (docs/format.md).
        head = keyring.associated_place(self.column)[:-1] + b"\x01"
        if len(self._heads) >= MAX_NAMESPACES:
            self._heads.clear()
        self._heads[keyring.namespace] = head
        return head

    def open(self, blob: bytes, row: RowKey, tenant: Any = None) -> bytes:
        """``keyring.decrypt(blob, Place(table, attribute, row))`` under the item's keyring.

        Raises:
            what :meth:`Keyring.decrypt` raises; ConfigurationError as :meth:`keyring`.
        """
        reader = self.reader
        if reader is not None:
            data: bytes = reader(blob, row)
            return data
        if tenant is None:
            self.keyring(tenant)  # raises: the item has no tenant
        assert self._tenant_reader is not None  # per tenant
        opened: bytes = self._tenant_reader(blob, row, tenant)
        return opened

    def token(self, data: bytes, normalizer: Callable[[Any], Any] | None, tenant: Any = None) -> bytes:
        """The blind-index token of the encoded (normalised) ``data`` under the newest index key
        of the item's keyring; ``normalizer`` is what the index record names.

        Raises:
            ConfigurationError: the attribute's recorded index options differ; as :meth:`keyring`.
        """
        if tenant is None and self._family is not None:
            self.keyring(tenant)  # raises: the item has no tenant
        indexer = self._indexers.get(normalizer)
        if indexer is None:
            per_tenant = self._family is not None
            indexer = indexing.column_indexer(self._source, self.column, normalizer, per_tenant=per_tenant)
            self._indexers[normalizer] = indexer
        token: bytes = indexer(data, tenant) if self._family is not None else indexer(data)
        return token
