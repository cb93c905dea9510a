"""The master-key contract, and the local master key for development and embedded use."""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from fieldcrypt import _aead
from fieldcrypt.errors import ConfigurationError, UnwrapFailed

__all__ = [
    "LocalMasterKey",
    "MasterKey",
    "UnwrapFailed",
    "canonical_context",
    "is_write_only",
    "wraps_publicly",
]


@runtime_checkable
class MasterKey(Protocol):
    """A key-encryption key: wraps and unwraps 32-byte data keys under an encryption context.

    Security contract: ``unwrap(wrap(k, ctx), ctx) == k``; unwrapping under any other context, or
    a modified wrapped blob, raises :class:`UnwrapFailed`. The master key's own material never
    leaves it (KMS) or this process (local).

    ``key_id`` names the key durably (a full KMS key ARN, or ``local:<fingerprint>``); the key
    store records each wrapped copy under it. ``can_unwrap`` says whether a copy recorded under
    another id can be opened by this key (a multi-region replica can open its primary's copies).

    Raises:
        UnwrapFailed: the blob or context is wrong (tampering, swapped row, another key).
        KeyAccessError: the key could not be used (denied, disabled, unreachable, throttled).
    """

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes: ...

    def can_unwrap(self, recorded_key_id: str) -> bool: ...


def is_write_only(master_key: MasterKey) -> bool:
    """True for a master key that wraps but can never unwrap (a producer's RSA public key).

    An optional part of the contract: such a key sets the class attribute ``write_only = True``,
    and its keyring then refuses to decrypt and encrypts only under data keys it made itself.
    Keys that wrap another (rate limiting, counting) pass it on through ``inner``.
    """
    inner = getattr(master_key, "inner", None)
    if isinstance(inner, MasterKey):
        return is_write_only(inner)
    return getattr(master_key, "write_only", False) is True


def wraps_publicly(master_key: MasterKey) -> bool:
    """True for a master key anyone holding its public half can wrap under (an RSA KMS key).

    Such a wrap proves nothing about who made it: a keyring never trusts an anchor on it alone.
    Keys set the class attribute ``public_wrap = True``; wrappers pass it on through ``inner``.
    """
    inner = getattr(master_key, "inner", None)
    if isinstance(inner, MasterKey):
        return wraps_publicly(inner)
    return getattr(master_key, "public_wrap", False) is True


def canonical_context(context: Mapping[str, str]) -> bytes:
    """Deterministic bytes for an encryption context (sorted keys, compact JSON)."""
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode("utf-8")


class LocalMasterKey:
    """A 256-bit master key held by this process: for development, tests and the embedded default.

    Wrapping is AES-256-GCM with the canonical encryption context as associated data. There is no
    built-in default key: load one with :meth:`from_file` / :meth:`from_env`, or make one with
    :meth:`generate` / :meth:`write_new`. Anyone with the key file can read every value, so keep
    it out of the repository and the database backup.
    """

    __slots__ = ("_aead", "_key_id")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != _aead.KEY_BYTES:
            raise ConfigurationError("a local master key must be exactly 32 bytes")
        if key == bytes(len(key)):
            raise ConfigurationError("refusing an all-zero local master key")
        self._aead = _aead.Aead(key)
        fingerprint = _aead.hmac_sha256(key, b"fieldcrypt/local-master-key-id")[:8].hex()
        self._key_id = f"local:{fingerprint}"

    @classmethod
    def generate(cls) -> LocalMasterKey:
        return cls(_aead.new_key())

    @classmethod
    def from_base64(cls, text: str) -> LocalMasterKey:
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError("a local master key must be base64 of 32 bytes") from exc
        return cls(key)

    @classmethod
    def from_env(cls, variable: str = "FIELDCRYPT_MASTER_KEY") -> LocalMasterKey:
        text = os.environ.get(variable)
        if not text:
            raise ConfigurationError(
                f"environment variable {variable} is not set; create a key with "
                "`fieldcrypt init` or LocalMasterKey.write_new(path)"
            )
        return cls.from_base64(text)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, allow_shared: bool = False) -> LocalMasterKey:
        """Load a key written by :meth:`write_new` (base64 of 32 bytes).

        Refuses a file that its group or other users may read or write (anyone who can read it
        can read every value): ``chmod 600`` it, or pass ``allow_shared=True`` where a shared
        group is deliberate.
        """
        try:
            mode = os.stat(path).st_mode
            text = Path(path).read_text(encoding="ascii")
        except OSError as exc:
            raise ConfigurationError(f"cannot read local master key file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise ConfigurationError(f"local master key file {path} is not base64 text") from None
        if mode & 0o077 and os.name == "posix" and not allow_shared:
            raise ConfigurationError(
                f"local master key file {path} is readable or writable by others (mode "
                f"{stat.S_IMODE(mode):04o}): run `chmod 600 {path}`, or pass allow_shared=True"
            )
        return cls.from_base64(text)

    @classmethod
    def write_new(cls, path: str | os.PathLike[str]) -> LocalMasterKey:
        """Generate a key and write it (base64) to a new file readable only by its owner."""
        key = _aead.new_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(base64.b64encode(key).decode("ascii") + "\n")
        return cls(key)

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        return self._aead.seal(data_key, canonical_context(context))

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        try:
            return self._aead.open(wrapped, canonical_context(context))
        except _aead.AuthenticationFailed as exc:
            raise UnwrapFailed from exc

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return recorded_key_id == self._key_id

    def __repr__(self) -> str:
        return f"LocalMasterKey({self._key_id!r})"
