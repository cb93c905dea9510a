"""The one module that touches ``cryptography.hazmat``: AES-256-GCM, HMAC-SHA256, randomness.

Everything above this module handles keys as opaque ``bytes`` and never chooses a nonce. Keep it
that way: a new primitive goes here, behind a function whose name says what it is for.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fieldcrypt.errors import AuthenticationFailed

__all__ = ["Aead", "AuthenticationFailed", "constant_time_equal", "hmac_sha256", "new_key"]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


def new_key() -> bytes:
    """Return a fresh 256-bit key from the operating system's CSPRNG."""
    return os.urandom(KEY_BYTES)


class Aead:
    """AES-256-GCM with a fresh random 96-bit nonce per message.

    ``seal`` returns ``nonce || ciphertext || tag``; ``open`` reverses it or raises
    :class:`AuthenticationFailed`. The key object is built once per data key, not per value.
    """

    __slots__ = ("_aesgcm",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aesgcm = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aesgcm.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise AuthenticationFailed
        try:
            return self._aesgcm.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise AuthenticationFailed from exc

    def __repr__(self) -> str:
        return "Aead(<AES-256-GCM key hidden>)"


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (used for key commitment ids and blind indexes); one-shot C implementation."""
    return hmac.digest(key, message, "sha256")


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
