"""fieldcrypt: client-side field encryption with envelope keys under AWS KMS or a local master key.

The core needs only ``cryptography``. :class:`KmsMasterKey` and :class:`KmsRsaMasterKey` (boto3), :class:`SqlKeyStore`
(SQLAlchemy) and :class:`DynamoDBKeyStore` (boto3) load their host library only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fieldcrypt.cache import DataKeyCache
from fieldcrypt.errors import (
    ConfigurationError,
    DecryptionError,
    DuplicateValueError,
    FieldcryptError,
    InvalidValueError,
    KeyAccessError,
    KeyDestroyedError,
    NotCiphertextError,
    QueryNotSupportedError,
    UnsupportedFormatError,
)
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.master import LocalMasterKey, MasterKey
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status
from fieldcrypt.place import Place
from fieldcrypt.registry import get_keyring, register, unregister
from fieldcrypt.stores import KeyStore, MemoryKeyStore
from fieldcrypt.tenants import TenantKeyrings

if TYPE_CHECKING:
    from fieldcrypt.keys.kms import KmsMasterKey
    from fieldcrypt.keys.kms_rsa import KmsRsaMasterKey, RsaProducerKey
    from fieldcrypt.stores.dynamodb import DynamoDBKeyStore
    from fieldcrypt.stores.sql import SqlKeyStore

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DataKeyCache",
    "DataKeyRecord",
    "DecryptionError",
    "DuplicateValueError",
    "DynamoDBKeyStore",
    "FieldcryptError",
    "InvalidValueError",
    "KeyAccessError",
    "KeyDestroyedError",
    "KeyStore",
    "Keyring",
    "KmsMasterKey",
    "KmsRsaMasterKey",
    "LocalMasterKey",
    "MasterKey",
    "MemoryKeyStore",
    "NotCiphertextError",
    "Place",
    "Purpose",
    "QueryNotSupportedError",
    "RsaProducerKey",
    "SqlKeyStore",
    "Status",
    "TenantKeyrings",
    "UnsupportedFormatError",
    "get_keyring",
    "register",
    "unregister",
]

_LAZY = {
    "KmsMasterKey": "fieldcrypt.keys.kms",
    "KmsRsaMasterKey": "fieldcrypt.keys.kms_rsa",
    "RsaProducerKey": "fieldcrypt.keys.kms_rsa",
    "SqlKeyStore": "fieldcrypt.stores.sql",
    "DynamoDBKeyStore": "fieldcrypt.stores.dynamodb",
}


def __getattr__(name: str) -> Any:
    # Integrations import their host library (boto3, SQLAlchemy) only when asked for.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fieldcrypt' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
