"""The fieldcrypt error tree: one root, one opaque decryption error, and a few precise others.

Every error a caller can catch derives from :class:`FieldcryptError`. Messages name *where*
something went wrong (keyring, table, column, row, key id, master key ARN) and what to do next;
they never contain plaintext, key material or the reason a decryption failed (a forger could use
the difference between "bad tag" and "bad header" as an oracle).
"""

from __future__ import annotations


class FieldcryptError(Exception):
    """Root of every error raised by fieldcrypt."""


class ConfigurationError(FieldcryptError, ValueError):
    """The library was set up wrongly: a bad key, an unknown keyring, an invalid bound."""


class KeyAccessError(FieldcryptError):
    """A master key could not be used (KMS denied, disabled, missing, throttled, unreachable)."""

    def __init__(self, message: str, *, master_key_id: str | None = None, code: str | None = None):
        super().__init__(message)
        self.master_key_id = master_key_id
        self.code = code


class DecryptionError(FieldcryptError):
    """A value could not be decrypted. Deliberately says nothing about why.

    Raised for a tampered value, a value moved to another column or row, a wrong data key or a
    swapped key-store row alike. ``table``, ``column`` and ``row`` say where the value was read.
    """

    def __init__(self, *, table: str | None = None, column: str | None = None, row: str | None = None):
        self.table = table
        self.column = column
        self.row = row
        where = ".".join(part for part in (table, column) if part) or "value"
        message = f"cannot decrypt {where}"
        if row is not None:
            message += f" (row {row})"
        super().__init__(message)


class QueryNotSupportedError(FieldcryptError, TypeError):
    """A query asked for something that cannot work on ciphertext (LIKE, ORDER BY, ranges...)."""


class UnsupportedFormatError(DecryptionError):
    """A stored value declares a format version this release does not understand.

    A subclass of :class:`DecryptionError` (a flipped version byte is still a failed decryption),
    kept separate because the fix may be different: upgrade fieldcrypt.
    """

    def __init__(self, version: int, **where: str | None):
        super().__init__(**where)
        self.version = version
        self.args = (f"{self.args[0]}: format version {version} is not supported by this release",)


class KeyDestroyedError(DecryptionError):
    """The value's data key was destroyed on purpose (crypto-shredding): the value is gone."""

    def __init__(self, key_id: str, **where: str | None):
        super().__init__(**where)
        self.key_id = key_id
        self.args = (f"{self.args[0]}: data key {key_id} was destroyed",)


class NotCiphertextError(DecryptionError):
    """A stored value is not a fieldcrypt ciphertext at all: most likely plaintext left in an
    encrypted column (an unfinished ``encrypt_column``). The value itself is never quoted."""

    def __init__(self, **where: str | None):
        super().__init__(**where)
        self.args = (
            f"{self.args[0]}: not a fieldcrypt ciphertext (plaintext left in an encrypted column? "
            "`fieldcrypt status` counts such values, `encrypt-column` encrypts them)",
        )
