"""One column's per-value read path, resolved once per column instead of once per value.

A column's result processor runs once per value read, so what it would otherwise look up per
value is resolved here once: the keyring registered under the column's name (again only after a
``register``/``unregister``), and, per data key the column's values name, the cached key and the
whole associated data (header, namespace, place). Per value there remain the checks that carry
the guarantees: the registry generation, the key's use and age bounds (``CacheEntry``), the
AES-GCM open itself, and the codec. Anything unusual (a key not cached yet or past its bounds, a
malformed or tampered value, a producer keyring) goes through :meth:`Keyring.decrypt`, the one
place that decides which error to raise, so this path raises exactly what ``decrypt`` raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fieldcrypt import _aead, registry
from fieldcrypt import format as fmt
from fieldcrypt.cache import CacheEntry
from fieldcrypt.codecs import _DECODE_ERRORS, Codec, TextCodec
from fieldcrypt.errors import DecryptionError, ValueTypeError
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place

_HEADER = fmt.HEADER_BYTES
_SEALED = _HEADER + _aead.NONCE_BYTES
# Data keys one column's reader remembers (values written over many rotations); past it the memo
# starts again. Each entry is a key the shared cache also holds, under the cache's bounds.
MAX_KEYS_PER_COLUMN = 64

_Openings = dict[bytes, tuple[CacheEntry[_aead.Aead], bytes]]


def column_reader(keyring_name: str, place: Place, codec: Codec[Any]) -> Callable[[Any], Any]:
    """``codec.decode(registered keyring.decrypt(value, place))`` for one column's values.

    ``value`` is the stored v1 bytes (bytearray and memoryview accepted) or None (returned as is).

    Raises (when called): what :meth:`Keyring.decrypt` and ``codec.decode`` raise; a stored value
    that is not bytes at all (a ``str`` where SQLite kept an old plaintext) is a DecryptionError.
    """
    generation = registry.generation()
    from_bytes, decode_errors = _decoder(codec, place)
    # (registry generation, keyring, its cache's clock, openings by value header): one tuple, so
    # a thread never sees one keyring's openings with another's keyring.
    state: tuple[int, Keyring | None, Callable[[], float], _Openings] = (-1, None, lambda: 0.0, {})

    def refresh() -> tuple[int, Keyring | None, Callable[[], float], _Openings]:
        nonlocal state
        seen = generation.value
        keyring = registry.get_keyring(keyring_name)
        state = (seen, keyring, keyring.cache.clock, {})
        return state

    def slow(keyring: Keyring, openings: _Openings, blob: bytes) -> bytes:
        data = keyring.decrypt(blob, place)  # raises the right error; loads the key if needed
        opening = keyring.opening(blob[:_HEADER], place)
        if opening is not None:
            if len(openings) >= MAX_KEYS_PER_COLUMN:
                openings.clear()
            openings[blob[:_HEADER]] = opening
        return data

    def read(value: Any) -> Any:
        if value is None:
            return None
        blob = value if type(value) is bytes else as_bytes(value, place)
        current = state
        if current[0] is not generation.value:
            current = refresh()
        found = current[3].get(blob[:_HEADER])
        if found is None:
            data = slow(current[1], current[3], blob)  # type: ignore[arg-type]
        else:
            entry, associated = found
            aead = entry.value  # before the bound: see CacheEntry.kill
            # CacheEntry.use() inlined: the key's use count and age bound, on every value.
            if next(entry._uses) <= entry.max_uses and current[2]() < entry.expires_at:
                try:
                    data = aead.open_parts(blob[_HEADER:_SEALED], blob[_SEALED:], associated)
                except (_aead.TagMismatch, ValueError):
                    # The header matched a v1 key, so a short or damaged value is what decrypt
                    # calls it too: the opaque DecryptionError.
                    raise DecryptionError(**place.where()) from None
            else:
                data = slow(current[1], current[3], blob)  # type: ignore[arg-type]
        try:
            return from_bytes(data)
        except decode_errors:
            raise ValueTypeError(codec.name, **place.where()) from None

    return read


def as_bytes(value: Any, place: Place) -> bytes:
    """A binary column's value as bytes. A ``str`` (SQLite keeps whatever was written, e.g. an old
    plaintext in a column never widened) or anything else is not a ciphertext: DecryptionError."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise DecryptionError(**place.where())


def _decoder(
    codec: Codec[Any], place: Place
) -> tuple[Callable[[bytes], Any], tuple[type[BaseException], ...]]:
    """The codec's ``decode`` as (function of the bytes, the errors that mean "not this type")."""
    if type(codec) is TextCodec:
        return bytes.decode, (UnicodeDecodeError,)  # TextCodec.from_bytes, without a frame
    if type(codec).decode is Codec.decode:
        return codec.from_bytes, _DECODE_ERRORS
    return lambda data: codec.decode(data, place), ()  # a codec with its own decode and errors
