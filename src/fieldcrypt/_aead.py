"""The one module that touches ``cryptography.hazmat``: AES-256-GCM, HMAC-SHA256, RSA-OAEP, randomness.

Everything above this module handles keys as opaque ``bytes`` and never chooses a nonce. Keep it
that way: a new primitive goes here, behind a function whose name says what it is for.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256, Hash
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fieldcrypt.errors import AuthenticationFailed

__all__ = [
    "Aead",
    "AuthenticationFailed",
    "HmacKey",
    "RsaPublicKey",
    "TagMismatch",
    "constant_time_equal",
    "derive_key",
    "hmac_sha256",
    "new_key",
    "rsa_oaep_decrypt",
]

# What ``Aead.open_parts`` raises on a wrong key, tag or associated data.
TagMismatch = InvalidTag

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

    __slots__ = ("_aesgcm", "open_parts")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aesgcm = AESGCM(key)
        # ``open_parts(nonce, ciphertext_and_tag, aad)``: AES-GCM's own decrypt, for the per-value
        # read path (a Python frame less than ``open``); it raises :data:`TagMismatch`, which the
        # caller turns into its one opaque error. Reading only: sealing always draws its nonce here.
        self.open_parts = self._aesgcm.decrypt

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


class HmacKey:
    """HMAC-SHA256 under one key over ``prefix || message``, for blind indexes.

    The HMAC state after each prefix (a column's label and place) is computed once and copied per
    message, which halves the cost of a token; the result is exactly
    ``hmac_sha256(key, prefix + message)``. At most ``MAX_PREFIXES`` states are kept (then all
    are dropped and rebuilt on use), and they live only as long as this object, which the
    data-key cache holds within its age and use bounds.
    """

    __slots__ = ("_key", "states")
    MAX_PREFIXES = 4096

    def __init__(self, key: bytes) -> None:
        self._key = key
        # prefix -> HMAC state after it; copied before use, never updated in place (a per-column
        # indexer, fieldcrypt.indexing, copies the state itself rather than call digest).
        self.states: dict[bytes, HMAC] = {}

    def digest(self, prefix: bytes, message: bytes) -> bytes:
        state = self.states.get(prefix)
        if state is None:
            if len(self.states) >= self.MAX_PREFIXES:
                self.states.clear()
            state = HMAC(self._key, SHA256())
            state.update(prefix)
            self.states[prefix] = state
        running = state.copy()
        running.update(message)
        return running.finalize()

    def __repr__(self) -> str:
        return "HmacKey(<HMAC-SHA256 key hidden>)"


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (used for key commitment ids and blind indexes); one-shot C implementation."""
    return hmac.digest(key, message, "sha256")


def derive_key(secret: bytes, info: bytes) -> bytes:
    """A 32-byte key for one use (``info`` names it) from a 32-byte secret: HKDF-SHA256, no salt."""
    return HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=info).derive(secret)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


# -- reading other libraries' ciphertexts (adoption sources, fieldcrypt.foreign) ----------------
# Decrypt only: fieldcrypt never writes these formats. Each raises AuthenticationFailed on a
# wrong key or a damaged value, never returns unauthenticated bytes as if they were authentic
# (AES-CBC has no tag: its callers must say so; see fieldcrypt.foreign).


def sha256(data: bytes) -> bytes:
    """SHA-256 of ``data`` (sqlalchemy-utils derives its AES key this way)."""
    digest = Hash(SHA256())
    digest.update(data)
    return digest.finalize()


def open_aes_gcm_iv_tag_ct(key: bytes, data: bytes) -> bytes:
    """AES-GCM with no associated data over ``iv(12) || tag(16) || ciphertext`` (sqlalchemy-utils)."""
    if len(data) < NONCE_BYTES + TAG_BYTES:
        raise AuthenticationFailed
    iv, tag, body = (
        data[:NONCE_BYTES],
        data[NONCE_BYTES : NONCE_BYTES + TAG_BYTES],
        data[NONCE_BYTES + TAG_BYTES :],
    )
    try:
        return AESGCM(key).decrypt(iv, body + tag, None)
    except (InvalidTag, ValueError) as exc:
        raise AuthenticationFailed from exc


def open_aes_cbc_unauthenticated(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC decryption of whole blocks, padding left in place. Not authenticated."""
    if not data or len(data) % 16:
        raise AuthenticationFailed
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def open_fernet(keys: Sequence[bytes], token: bytes) -> bytes:
    """A Fernet token under any of ``keys`` (MultiFernet: the first that verifies)."""
    try:
        return MultiFernet([Fernet(k) for k in keys]).decrypt(token)
    except (InvalidToken, ValueError, TypeError) as exc:
        raise AuthenticationFailed from exc


def check_fernet_key(key: bytes) -> None:
    """Raises ValueError unless ``key`` is a Fernet key (32 url-safe base64 bytes)."""
    Fernet(key)


# KMS's names for its RSA encryption algorithms -> the OAEP hash (MGF1 uses the same hash; label
# empty), as the KMS developer guide specifies them.
_OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RSAES_OAEP_SHA_1": hashes.SHA1,
    "RSAES_OAEP_SHA_256": hashes.SHA256,
}


def _oaep(algorithm: str) -> padding.OAEP:
    digest = _OAEP_HASHES.get(algorithm)
    if digest is None:
        raise ValueError(f"unsupported RSA encryption algorithm {algorithm!r}")
    return padding.OAEP(mgf=padding.MGF1(algorithm=digest()), algorithm=digest(), label=None)


class RsaPublicKey:
    """The public half of an RSA key: encrypts with RSAES-OAEP-SHA-256 (KMS's ``RSAES_OAEP_SHA_256``).

    Built from DER (SubjectPublicKeyInfo, what KMS ``GetPublicKey`` returns) or PEM. ``bits`` is
    the modulus size; ``der`` the canonical DER encoding (for fingerprints).
    """

    __slots__ = ("_key", "bits", "der")

    def __init__(self, encoded: bytes) -> None:
        try:
            if encoded.lstrip().startswith(b"-----BEGIN"):
                key = serialization.load_pem_public_key(encoded)
            else:
                key = serialization.load_der_public_key(encoded)
        except (ValueError, TypeError) as exc:
            raise ValueError("not a DER or PEM public key") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"not an RSA public key ({type(key).__name__})")
        self._key = key
        self.bits = key.key_size
        self.der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def encrypt(self, plaintext: bytes) -> bytes:
        """RSAES-OAEP with SHA-256 and MGF1-SHA-256, empty label; randomised, one block."""
        return self._key.encrypt(plaintext, _oaep("RSAES_OAEP_SHA_256"))

    def __repr__(self) -> str:
        return f"RsaPublicKey(bits={self.bits})"


def rsa_oaep_decrypt(private_key: object, blob: bytes, algorithm: str = "RSAES_OAEP_SHA_256") -> bytes:
    """Decrypt an OAEP block with a ``cryptography`` RSA private key (the test KMS double's path).

    fieldcrypt itself never holds an RSA private key: readers decrypt through KMS. This exists for
    :mod:`fieldcrypt.testing.moto_shims`, which answers KMS ``Decrypt`` of RSA keys for moto.

    Raises:
        AuthenticationFailed: the block does not decrypt under this key and algorithm.
    """
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError("an RSA private key object is required")
    oaep = _oaep(algorithm)
    try:
        return private_key.decrypt(blob, oaep)
    except ValueError as exc:
        raise AuthenticationFailed from exc
