"""DynamoDB without an ORM: encrypt and decrypt raw items (boto3, aioboto3), and the item-level
code the PynamoDB adapter and the re-encryption job share (wire format, tables, status).

Importing this package imports neither PynamoDB nor SQLAlchemy; only :mod:`.reencrypt`,
:mod:`.status` and :mod:`.tables` need botocore (they call DynamoDB).
"""

from fieldcrypt.dynamodb.item import EncryptedField, ItemEncryptor

__all__ = ["EncryptedField", "ItemEncryptor"]
