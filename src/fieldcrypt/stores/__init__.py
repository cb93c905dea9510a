"""Key stores: where wrapped data keys live (next to the data they protect)."""

from fieldcrypt.stores.base import KeyStore, KeyStoreConflict
from fieldcrypt.stores.memory import MemoryKeyStore

__all__ = ["KeyStore", "KeyStoreConflict", "MemoryKeyStore"]
