"""The transitional read mode, for raw-SQL readers: while ``encrypt_column`` runs, a column holds
both plaintext and ciphertext. A value with the v1 shape is decrypted (and must decrypt: a damaged
ciphertext raises, it is never passed through as plaintext); any other value is the old plaintext.
The rule is :mod:`fieldcrypt.adoption`'s, the one the engine and ``Encrypted(transitional=True)``
(the same mode for the ORM and Core) also use.

Only a column being adopted should be read this way, and only until ``status`` shows no
plaintext left; then switch the column to the plain encrypted type.
"""

from __future__ import annotations

from typing import Any

from fieldcrypt import adoption
from fieldcrypt.errors import DecryptionError
from fieldcrypt.place import RowKey
from fieldcrypt.rotation.spec import ColumnSpec


def read(spec: ColumnSpec, stored: object, row: RowKey | None = None) -> Any:
    """The Python value of ``stored``, whether it is still plaintext or already encrypted.

    Raises:
        DecryptionError: the value has the ciphertext shape but does not decrypt, or begins like a
            ciphertext but is too short to be one.
    """
    if stored is None:
        return None
    codec = spec.the_codec
    blob = spec.as_blob(stored)
    if blob is None:
        try:
            return codec.from_bytes(spec.plaintext_bytes(stored))
        except adoption.DamagedCiphertext:
            raise DecryptionError(**spec.place(row).where()) from None
    place = spec.place(row)
    return codec.decode(spec.resolve_keyring().decrypt(blob, place), place)
