"""One column's per-value read path, resolved once per column instead of once per value.

A column's result processor runs once per value read, so what it would otherwise look up per
value is resolved here once: the keyring registered under the column's name (again only after a
``register``/``unregister``), and, per data key the column's values name, the cached key and the
whole associated data (header, namespace, place). Per value there remain the checks that carry
the guarantees: the registry generation, the key's use and age bounds (``CacheEntry``), the
AES-GCM open itself, and the codec. Anything unusual (a key not cached yet or past its bounds, a
malformed or tampered value, a producer keyring) goes through :meth:`Keyring.decrypt`, the one
place that decides which error to raise, so this path raises exactly what ``decrypt`` raises.

A per-tenant column resolves the same things per tenant keyring, kept with that keyring while
:class:`~fieldcrypt.tenants.TenantKeyrings` holds it (:mod:`fieldcrypt.following`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fieldcrypt import _aead, metrics, registry
from fieldcrypt import format as fmt
from fieldcrypt.cache import CacheEntry
from fieldcrypt.codecs import _DECODE_ERRORS, Codec, TextCodec
from fieldcrypt.errors import DecryptionError, ValueTypeError
from fieldcrypt.following import Following
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, RowKey, encode_row_key
from fieldcrypt.tenants import Held, TenantKeyrings

_HEADER = fmt.HEADER_BYTES
_SEALED = _HEADER + _aead.NONCE_BYTES
# Data keys one column's reader remembers (values written over many rotations); past it the memo
# starts again. Each entry is a key the shared cache also holds, under the cache's bounds.
MAX_KEYS_PER_COLUMN = 64

_Openings = dict[bytes, tuple[CacheEntry[_aead.Aead], bytes]]
# (keyring, its cache's clock, openings by value header): one tuple, so a thread never sees one
# keyring's openings with another's keyring.
_State = tuple[Keyring, Callable[[], float], _Openings]
# Before the first value and after every registry change: knows no key, so the next value takes
# the slow path, which resolves. Its openings stay empty (nothing is remembered into it).
_UNRESOLVED: _State = (None, time.monotonic, {})  # type: ignore[assignment]


class _Resolved(Following[_State]):
    """One column's resolution (:class:`fieldcrypt.following.Following`): per keyring it reads
    under, the openings (cached key, associated data up to the row) of the data keys its values
    named so far.

    The registry resets it on every register/unregister, so the per-value path checks nothing
    for that: a reset state knows no data key, and the first value after it comes here and
    resolves the keyring again.
    """

    __slots__ = ("place", "row_bound")

    def __init__(
        self, keyring: Keyring | TenantKeyrings | str, place: Place, *, row_bound: bool, per_tenant: bool
    ) -> None:
        super().__init__(keyring, _UNRESOLVED, per_tenant=per_tenant)
        self.place = place
        self.row_bound = row_bound

    def open_slowly(
        self, state: _State, blob: bytes, place: Place, held: Held | None = None, token: object = None
    ) -> bytes:
        """:meth:`Keyring.decrypt` (every check, every error, loading the key), then remember the
        value's data key for the next values of this column (under this tenant's keyring, when
        ``held`` is a tenant's keyring and scratch)."""
        if state[0] is None:
            if held is None:
                keyring, seen = self.resolve_keyring()
            else:
                keyring, seen = held[0], registry.generation_now()
            state = (keyring, keyring.cache.clock, {})
            self.keep(state, seen, None if held is None else held[1], token)
        keyring, _, openings = state
        data = keyring.decrypt(blob, place)
        header = blob[:_HEADER]
        opening = keyring.opening(header, self.place, row_bound=self.row_bound)
        # A keyring whose values are counted (fieldcrypt.metrics wraps its decrypt) is always
        # read through decrypt: nothing is remembered, so every value comes here.
        if opening is not None and "decrypt" not in vars(keyring):
            if len(openings) >= MAX_KEYS_PER_COLUMN:
                openings.clear()
            openings[header] = opening
        return data


def column_reader(keyring: Keyring | str, place: Place, codec: Codec[Any]) -> Callable[[Any], Any]:
    """``codec.decode(registered keyring.decrypt(value, place))`` for one column's values.

    ``value`` is the stored v1 bytes (bytearray and memoryview accepted) or None (returned as is).

    Raises (when called): what :meth:`Keyring.decrypt` and ``codec.decode`` raise; a stored value
    that is not bytes at all (a ``str`` where SQLite kept an old plaintext) is a DecryptionError.
    """
    resolved = _Resolved(keyring, place, row_bound=False, per_tenant=False)
    box = resolved.one
    from_bytes, decode_errors = _decoder(codec, place)

    def read(value: Any) -> Any:
        if value is None:
            return None
        blob = value if type(value) is bytes else as_bytes(value, place)
        state = box[0]
        # .get, not try/except KeyError: a slow open inside the except block would chain the
        # KeyError, whose message is the value's first bytes (plaintext, when it is plaintext).
        found = state[2].get(blob[:_HEADER])
        if found is None:
            data = resolved.open_slowly(state, blob, place)
        else:
            entry, associated = found
            aead = entry.value  # before the bound: see CacheEntry.kill
            # CacheEntry.use() inlined: the key's use count and age bound, on every value.
            if next(entry._uses) <= entry.max_uses and state[1]() < entry.expires_at:
                try:
                    data = aead.open_parts(blob[_HEADER:_SEALED], blob[_SEALED:], associated)
                except (_aead.TagMismatch, ValueError):
                    # The header matched a v1 key, so a short or damaged value is what decrypt
                    # calls it too: the opaque DecryptionError.
                    raise DecryptionError(**place.where()) from None
            else:
                data = resolved.open_slowly(state, blob, place)
        try:
            return from_bytes(data)
        except decode_errors:
            raise ValueTypeError(codec.name, **place.where()) from None

    return read


def row_reader(
    keyring: Keyring | TenantKeyrings | str,
    column: Place,
    codec: Codec[Any] | None,
    *,
    row_bound: bool = True,
    per_tenant: bool = False,
) -> Callable[..., Any]:
    """``read(blob, row, tenant=None)``: ``codec.decode(keyring.decrypt(blob, Place(table,
    column, row)))`` for one column (or DynamoDB attribute) whose values need their row: bound to
    it (``row_bound``: the associated data up to the row is resolved per data key, the row's
    canonical encoding appended per value), or under the row's tenant's keyring (``per_tenant``:
    ``keyring`` is then a :class:`TenantKeyrings` or its registered name, and what is resolved is
    kept per tenant keyring, dropped with it). No Place is built unless an error names it.
    ``keyring``: a keyring, or the name of a registered one (followed across ``register``);
    ``codec`` None returns the plaintext bytes (the caller decodes). ``row`` is ignored (None is
    fine) when not ``row_bound``; ``tenant`` is ignored when not ``per_tenant``.

    Raises (when called): what :meth:`Keyring.decrypt`, ``codec.decode`` and
    :meth:`TenantKeyrings.held_for` raise.
    """
    resolved = _Resolved(keyring, column, row_bound=row_bound, per_tenant=per_tenant)
    box = resolved.one
    from_bytes, decode_errors = (bytes, ()) if codec is None else _decoder(codec, column)
    codec_name = "bytes" if codec is None else codec.name
    table, name = column.table, column.column

    def read(blob: bytes, row: RowKey, tenant: Any = None) -> Any:
        held: Held | None
        if per_tenant:
            state, held, token = resolved.state_for(tenant)
        else:
            state, held, token = box[0], None, None
        found = state[2].get(blob[:_HEADER])  # .get: see column_reader
        if found is None:
            data = resolved.open_slowly(state, blob, Place(table, name, row), held, token)
        else:
            entry, associated = found
            aead = entry.value  # before the bound: see CacheEntry.kill
            if next(entry._uses) <= entry.max_uses and state[1]() < entry.expires_at:
                try:
                    data = aead.open_parts(
                        blob[_HEADER:_SEALED],
                        blob[_SEALED:],
                        associated + encode_row_key(row) if row_bound else associated,
                    )
                except (_aead.TagMismatch, ValueError):
                    raise DecryptionError(**Place(table, name, row).where()) from None
            else:
                data = resolved.open_slowly(state, blob, Place(table, name, row), held, token)
        try:
            return from_bytes(data)
        except decode_errors:
            raise ValueTypeError(codec_name, **Place(table, name, row).where()) from None

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


metrics.when_counting(registry.reset_followers)
