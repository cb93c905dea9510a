"""PynamoDB integration: encrypted attributes bound to their item, blind indexes, re-encryption.

Importing this package imports PynamoDB; the core (``import fieldcrypt``) never does.
"""

from fieldcrypt.pynamodb.attributes import BlindIndexAttribute, EncryptedAttribute, EncryptedSet
from fieldcrypt.pynamodb.model import EncryptedModel

__all__ = ["BlindIndexAttribute", "EncryptedAttribute", "EncryptedModel", "EncryptedSet"]
