"""Field ciphertext format v1 (specified in docs/format.md).

Binary layout, 49 bytes of overhead::

    offset  size  field
    0       1     version = 0x01
    1       20    data key id = HMAC-SHA256(data_key, "fieldcrypt/v1/key-id")[:20]
    21      12    nonce (random)
    33      n     AES-256-GCM ciphertext of the plaintext
    33+n    16    GCM tag

Associated data = bytes 0..21 (version and key id) || Place.encode().

The key id doubles as the key commitment: a reader recomputes it from the unwrapped data key and
refuses a key whose id differs, so one ciphertext can only ever open under one data key.
The text form is standard base64 of the binary form (an 11-byte SSN: 60 bytes, 80 characters).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from fieldcrypt import _aead
from fieldcrypt.errors import MalformedCiphertext, UnsupportedFormatError

VERSION_1 = 1
# Format versions stay below the first printable ASCII byte, so a value starting at or above it
# (or with 0) is not a ciphertext of any version: typically plaintext left in an encrypted column.
FIRST_TEXT_BYTE = 0x20
KEY_ID_BYTES = 20
HEADER_BYTES = 1 + KEY_ID_BYTES
OVERHEAD = HEADER_BYTES + _aead.NONCE_BYTES + _aead.TAG_BYTES
KEY_ID_LABEL = b"fieldcrypt/v1/key-id"


# The format's errors live with every other error; these names stay for the callers that parse.
UnknownVersion = UnsupportedFormatError
__all__ = [
    "Envelope",
    "MalformedCiphertext",
    "UnknownVersion",
    "from_text",
    "header_for",
    "key_id_for",
    "looks_like_ciphertext",
    "parse",
    "to_text",
]


def key_id_for(data_key: bytes) -> bytes:
    """The committing id of a data key (see module docstring)."""
    return _aead.hmac_sha256(data_key, KEY_ID_LABEL)[:KEY_ID_BYTES]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed v1 ciphertext: its header (version and key id) and the sealed body."""

    header: bytes
    sealed: bytes

    @property
    def key_id(self) -> bytes:
        return self.header[1:]


def header_for(key_id: bytes) -> bytes:
    return bytes((VERSION_1,)) + key_id


def parse(blob: bytes) -> Envelope:
    """The header and sealed body of a v1 value.

    Raises:
        MalformedCiphertext: empty, or shorter than the v1 overhead.
        UnsupportedFormatError: the version byte names a format this release does not know.
    """
    if not blob:
        raise MalformedCiphertext
    if blob[0] != VERSION_1:
        raise UnsupportedFormatError(blob[0])
    if len(blob) < OVERHEAD:
        raise MalformedCiphertext
    return Envelope(blob[:HEADER_BYTES], blob[HEADER_BYTES:])


def to_text(blob: bytes) -> str:
    return binascii.b2a_base64(blob, newline=False).decode("ascii")


def from_text(text: str) -> bytes:
    # binascii directly (the text path runs per value): strict mode refuses exactly what
    # base64.b64decode(validate=True) refuses (characters outside the alphabet, bad padding).
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise MalformedCiphertext from exc
    # Only the one canonical spelling: strict mode leaves the unused low bits of the character
    # before "=" / "==" unchecked, so one ciphertext would have several stored forms.
    if text[-1:] == "=":
        double = text[-2:] == "=="
        if text[-3 if double else -2] not in (_ZERO_LOW_4 if double else _ZERO_LOW_2):
            raise MalformedCiphertext
    return raw


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_ZERO_LOW_4 = frozenset(_ALPHABET[::16])  # before "==": 4 unused bits
_ZERO_LOW_2 = frozenset(_ALPHABET[::4])  # before "=": 2 unused bits


def looks_like_ciphertext(blob: bytes) -> bool:
    """True when ``blob`` has the v1 shape (used only by the transitional read mode)."""
    return len(blob) >= OVERHEAD and blob[0] == VERSION_1
