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


class StorageMismatchError(ConfigurationError):
    """A column holds ciphertexts in another storage form (base64 text vs binary) than declared.

    Raised instead of taking those values for plaintext, which would report them as work left and
    let ``encrypt_column`` encrypt a ciphertext a second time.
    """


class InvalidValueError(FieldcryptError, ValueError):
    """A value its column's declared type does not allow (longer than ``String(n)``); nothing was written.

    Checked before encryption, so every database refuses alike (a ciphertext's length says
    nothing the database could check).
    """


class KeyAccessError(FieldcryptError):
    """A master key could not be used (KMS denied, disabled, missing, throttled, unreachable)."""

    def __init__(
        self,
        message: str,
        *,
        master_key_id: str | None = None,
        code: str | None = None,
        tenant: str | None = None,
    ):
        super().__init__(message)
        self.master_key_id = master_key_id
        self.code = code
        self.tenant = tenant  # the tenant whose keyring failed (fieldcrypt.tenants), if any


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


class DuplicateValueError(FieldcryptError, ValueError):
    """A ``unique=True`` searchable column already holds this value in another row, under a
    blind-index token of an older index key (during a rotation, which the database's unique
    index cannot see). Nothing was written."""

    def __init__(self, table: str, column: str) -> None:
        super().__init__(
            f"{table}.{column} is unique and another row already holds this value (found through "
            "its token under the previous blind-index key: a blind-index rotation is under way); "
            "nothing was written"
        )


class KeyStoreConflict(FieldcryptError):
    """A put found the id taken, or an update found a newer revision than the one it read."""


class KeyStoreIntegrityError(ConfigurationError):
    """The key store holds what no key administrator put there: the keyring's anchor was replaced
    (another secret, or not the pinned ``anchor_id``). New values are refused; reads go on."""


class KeyStoreUnavailable(FieldcryptError):
    """The key-store table could not be read or written (network, throttling after retries)."""


class AuthenticationFailed(FieldcryptError):
    """Internal: an AEAD tag did not verify. Callers turn it into :class:`DecryptionError`."""


class UnwrapFailed(FieldcryptError):
    """Internal: a wrapped key did not open under this master key and context.

    The keyring turns it into the opaque :class:`DecryptionError`: a swapped key-store row and a
    corrupted one look alike to the caller.
    """


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
        self.args = (
            f"{self.args[0]}: format version {version} is not supported by this release "
            "(upgrade fieldcrypt, or check that the column really holds fieldcrypt values)",
        )


class MalformedCiphertext(DecryptionError):
    """A stored value is not a v1 ciphertext at all (too short, or text that is not base64).

    Raised by :mod:`fieldcrypt.format` and by ``Keyring.key_id_of``; reading a value through a
    keyring turns it into the plain :class:`DecryptionError` naming the place.
    """

    def __init__(self, **where: str | None):
        super().__init__(**where)
        self.args = (
            f"{self.args[0]}: not a fieldcrypt ciphertext (pass the value exactly as read from "
            "the encrypted column; a text-storage column holds base64)",
        )


class DamagedCiphertext(DecryptionError, ValueError):
    """A stored value starts like a v1 ciphertext but is too short to be one (truncated).

    Met while a column is adopted (transitional reads, ``encrypt_column``): it is refused rather
    than taken for plaintext.
    """


class ValueTypeError(DecryptionError):
    """A value decrypted (it is authentic) but is not a value of the column's declared type.

    The column's type was changed after values were written under another one (an ``Integer``
    column declared ``Encrypted(String)`` when it was encrypted, say). The message names the
    place and the expected type, never the value.
    """

    def __init__(self, expected: str, **where: str | None):
        super().__init__(**where)
        self.expected = expected
        self.args = (
            f"{self.args[0]}: the value is authentic but is not a valid {expected}; the column's "
            "declared type differs from the one its values were written with: declare the type "
            "they were encrypted with (or decrypt_column and encrypt_column again)",
        )


class KeyDestroyedError(DecryptionError):
    """The value's data key was destroyed on purpose (crypto-shredding): the value is gone."""

    def __init__(self, key_id: str, **where: str | None):
        super().__init__(**where)
        self.key_id = key_id
        self.args = (f"{self.args[0]}: data key {key_id} was destroyed",)


class ShreddedSubject(FieldcryptError):
    """The column tools' signal that a row's subject was shredded (``Keyring.shred_subject``): its
    value is skipped and counted apart, not listed as a failure. ``error`` is the underlying
    :class:`KeyDestroyedError`, which names the subject's tag (never its id) and the row."""

    def __init__(self, error: KeyDestroyedError):
        super().__init__("shredded subject")
        self.error = error


class MissingTenant(ConfigurationError):
    """An item or row of a per-tenant field whose tenant cannot be read: a job lists it as failed
    and goes on with the others."""


class UnknownKeyError(DecryptionError):
    """A value has the v1 shape but names no data key of the keyring.

    Plaintext that happens to begin with byte 0x01 (binary data, or base64 text whose decoding
    does), or a value written under another keyring. ``encrypt_column`` lists such a row instead
    of taking it for done; ``status`` and ``verify`` list it too.
    """

    def __init__(self, **where: str | None):
        super().__init__(**where)
        self.args = (
            f"{self.args[0]}: shaped like a ciphertext but names no data key of this keyring "
            "(plaintext beginning with byte 0x01, or another keyring's value); left as it is",
        )


class NotCiphertextError(DecryptionError):
    """A stored value is not a fieldcrypt ciphertext at all: most likely plaintext left in an
    encrypted column (an unfinished ``encrypt_column``). The value itself is never quoted."""

    def __init__(self, **where: str | None):
        super().__init__(**where)
        self.args = (
            f"{self.args[0]}: not a fieldcrypt ciphertext (plaintext left in an encrypted column? "
            "`fieldcrypt status` counts such values, `encrypt-column` encrypts them)",
        )


class PossibleRenameWarning(FieldcryptError, UserWarning):
    """Autogenerate dropped a table or column beside a new encrypted one that names no old place
    (``Encrypted(..., bound_as=...)``): if it is a rename, the drop would delete every value."""


class ForeignValueError(FieldcryptError, ValueError):
    """A stored value did not open under an adoption source's keys (:mod:`fieldcrypt.foreign`):
    a wrong old key, a damaged value, or not a value of that library."""
