"""Adoption sources: values another library encrypted, and the old keys to read them.

``encrypt_column(..., from_=SqlalchemyUtils(key, engine="aes-gcm"))`` or ``from_=Fernet(keys)``
reads each old ciphertext with the old key and encrypts its plaintext in fieldcrypt's format; a
column declared ``Encrypted(..., from_=...)`` reads both kinds of value while that runs. A value
that does not open under the old keys raises (and the batch engine lists it): it is never taken
for plaintext, never encrypted a second time, never passed through.

Formats read (decrypt only; fieldcrypt never writes them):

* sqlalchemy-utils ``StringEncryptedType`` / ``EncryptedType`` (0.36 to 0.43): the key is
  SHA-256 of the configured key; the stored value is base64 text (bytes for ``EncryptedType``) of
  ``AesGcmEngine``'s ``iv(12) || tag(16) || ciphertext`` or ``AesEngine``'s AES-CBC ciphertext,
  whose IV is the first 16 bytes of the key, padded as configured (``pkcs5``, ``naive``,
  ``oneandzeroes``, ``zeroes``). The plaintext is the value's text form (``repr`` of a number,
  ``'true'`` / ``'false'``, ISO dates).
* Fernet tokens (cryptography's ``Fernet`` / ``MultiFernet``, django-fernet-fields): the keys are
  tried in order, like ``MultiFernet``. ``FernetEngine`` of sqlalchemy-utils is this format with
  the key ``urlsafe_b64encode(sha256(key))``: ``Fernet.from_sqlalchemy_utils(key)``.

AES-CBC has no authentication tag: a wrong key or a tampered value is caught only by the padding
and UTF-8 checks, so an ``aes-cbc`` source may let a damaged value through as garbage text. That
is the old format's weakness, and the reason to move off it; after the move every value is
authenticated.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

from fieldcrypt import _aead
from fieldcrypt.errors import AuthenticationFailed, ConfigurationError, ForeignValueError

__all__ = ["Fernet", "ForeignFormat", "ForeignValueError", "SqlalchemyUtils"]


class ForeignFormat(ABC):
    """Another library's ciphertext format and the keys that read it."""

    name = "foreign"
    # Whether a wrong key or a damaged value is detected (an AEAD tag or HMAC): then a value that
    # opens is certainly of this format and is tried before the v1 shape test, which it may pass.
    authenticated = True

    def opens(self, stored: object) -> bool:
        """Whether ``stored`` is a value of this format under these keys."""
        try:
            self.open(stored)
        except ForeignValueError:
            return False
        return True

    def open(self, stored: object) -> str:
        """The plaintext's text form of one stored value.

        Raises:
            ForeignValueError: not a value of this format under these keys.
        """
        if isinstance(stored, bytes | bytearray | memoryview):
            stored = bytes(stored).decode("ascii", errors="strict") if _ascii(bytes(stored)) else None
        if not isinstance(stored, str):
            raise ForeignValueError(f"not a {self.name} value")
        try:
            return self._open(stored.strip()).decode("utf-8")
        except (AuthenticationFailed, UnicodeDecodeError, binascii.Error, ValueError):
            raise ForeignValueError(f"not a {self.name} value under these keys") from None

    @abstractmethod
    def _open(self, text: str) -> bytes: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{self.name}, keys hidden>)"


def _ascii(data: bytes) -> bool:
    return data.isascii()


_PADDINGS = ("pkcs5", "naive", "oneandzeroes", "zeroes")


class SqlalchemyUtils(ForeignFormat):
    """Values of sqlalchemy-utils' ``StringEncryptedType`` / ``EncryptedType``.

    Args:
        key: the ``key`` the columns were declared with (str or bytes; SHA-256 is applied, as
            sqlalchemy-utils does).
        engine: ``"aes-gcm"`` (``AesGcmEngine``) or ``"aes-cbc"`` (``AesEngine``).
        padding: ``AesEngine``'s padding (its default is ``"naive"``); ignored for AES-GCM.
    """

    def __init__(
        self,
        key: str | bytes,
        *,
        engine: Literal["aes-gcm", "aes-cbc"] = "aes-gcm",
        padding: Literal["pkcs5", "naive", "oneandzeroes", "zeroes"] = "naive",
    ) -> None:
        if engine not in ("aes-gcm", "aes-cbc"):
            raise ConfigurationError(f"engine must be 'aes-gcm' or 'aes-cbc', not {engine!r}")
        if padding not in _PADDINGS:
            raise ConfigurationError(f"padding must be one of {', '.join(_PADDINGS)}, not {padding!r}")
        if not key:
            raise ConfigurationError("key must be the non-empty key the columns were declared with")
        self._key = _aead.sha256(key.encode("utf-8") if isinstance(key, str) else bytes(key))
        self.engine = engine
        self.padding = padding
        self.name = f"sqlalchemy-utils {engine}"
        self.authenticated = engine == "aes-gcm"

    def _open(self, text: str) -> bytes:
        data = base64.b64decode(text, validate=True)
        if self.engine == "aes-gcm":
            return _aead.open_aes_gcm_iv_tag_ct(self._key, data)
        return _unpad(_aead.open_aes_cbc_unauthenticated(self._key, self._key[:16], data), self.padding)


def _unpad(data: bytes, padding: str) -> bytes:
    if padding == "naive":
        return data.rstrip(b"*")
    if padding == "oneandzeroes":
        return data.rstrip(b"\x00").rstrip(b"\x80")
    count = data[-1]
    if not 0 < count <= 16:
        raise AuthenticationFailed
    if padding == "pkcs5" and data[-count:] != bytes([count]) * count:
        raise AuthenticationFailed
    return data[:-count]


class Fernet(ForeignFormat):
    """Fernet tokens under any of ``keys`` (tried in order, as ``MultiFernet`` does).

    Args:
        keys: one Fernet key or several (url-safe base64 of 32 bytes, as ``Fernet.generate_key()``).
    """

    name = "fernet"

    def __init__(self, keys: str | bytes | Sequence[str | bytes]) -> None:
        listed = [keys] if isinstance(keys, str | bytes) else list(keys)
        if not listed:
            raise ConfigurationError("Fernet needs at least one key")
        self._keys = [k.encode("ascii") if isinstance(k, str) else bytes(k) for k in listed]
        for key in self._keys:
            try:
                _aead.check_fernet_key(key)
            except (ValueError, binascii.Error):
                raise ConfigurationError(
                    "a Fernet key is 32 bytes in url-safe base64 (Fernet.generate_key())"
                ) from None

    @classmethod
    def from_sqlalchemy_utils(cls, key: str | bytes) -> Fernet:
        """The keys of sqlalchemy-utils' ``FernetEngine`` declared with ``key``."""
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        return cls(base64.urlsafe_b64encode(_aead.sha256(raw)))

    def _open(self, text: str) -> bytes:
        return _aead.open_fernet(self._keys, text.encode("ascii"))
