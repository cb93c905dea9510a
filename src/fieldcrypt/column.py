"""``ColumnSpec``: one encrypted column's options, as everything below the column type needs them.

The SQLAlchemy integration builds it from an ``Encrypted(...)`` type (``fieldcrypt.sqlalchemy.
column_spec`` / ``spec_of``: the one function that derives it); the rotation engine, the Alembic
operations, the CLI and raw-SQL scripts take it. It states the storage rules of docs/sqlalchemy.md
once (binary v1 bytes or their base64 text; row binding; blind index) and applies them, so values
written from here read back through the column type and the other way round.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fieldcrypt import adoption, codecs, index_records
from fieldcrypt import format as fmt
from fieldcrypt.errors import ConfigurationError, DecryptionError, StorageMismatchError
from fieldcrypt.foreign import ForeignFormat
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, RowKey
from fieldcrypt.registry import get_keyring, get_tenant_keyrings
from fieldcrypt.storage import from_stored, to_stored
from fieldcrypt.tenants import TenantKeyrings

__all__ = ["ColumnSpec", "Sealed", "Storage", "from_stored", "to_stored"]


class Storage(enum.StrEnum):
    BINARY = "binary"  # the v1 bytes exactly (BYTEA, VARBINARY/BLOB, BLOB)
    TEXT = "text"  # standard base64 of the v1 bytes, in a character column


class Sealed:
    """A value already encrypted for its row (row binding): a column type stores it as is.

    Also what a row-bound column reads as in Core (open it with ``ColumnSpec.decrypt``); the ORM
    opens it on load. ``index`` carries the blind-index token computed beside it, if any, and
    ``older_tokens`` its tokens under older index keys (checked on insert for ``unique=True``).
    """

    __slots__ = ("blob", "index", "older_tokens")

    def __init__(self, blob: bytes, index: bytes | None = None, older_tokens: tuple[bytes, ...] = ()) -> None:
        self.blob = blob
        self.index = index
        # The value's tokens under older active index keys (unique columns during a rotation).
        self.older_tokens = older_tokens

    def __repr__(self) -> str:
        return f"Sealed(<{len(self.blob)} bytes of ciphertext>)"


def open_at(keyring: Keyring, blob: bytes, places: Sequence[Place]) -> bytes:
    """Decrypt ``blob`` bound to the first of ``places`` it opens at (a renamed column: its own
    place, then its old one). Only a failed decryption moves on to the next place.

    Raises:
        DecryptionError: it opens at none of them (the error names the first place).
    """
    first: DecryptionError | None = None
    for place in places:
        try:
            return keyring.decrypt(blob, place)
        except DecryptionError as exc:
            first = first or exc
    assert first is not None, "open_at needs at least one place"
    raise first


@dataclass(frozen=True)
class ColumnSpec:
    """One encrypted column: where it is and how its values are stored.

    Args:
        table, column: the column (also the place every ciphertext is bound to).
        keyring: a keyring or the name of a registered one; with ``tenant_column``, a
            :class:`~fieldcrypt.tenants.TenantKeyrings` or the name of registered ones.
        codec: how values become bytes: a codec, or its name in :func:`fieldcrypt.codecs.named`.
            None (unknown) is enough for ``status`` and ``reencrypt``, which never read a value;
            everything that does refuses to guess.
        storage: ``"binary"`` (the v1 bytes) or ``"text"`` (their base64).
        bind_row: ciphertexts are bound to the row's primary key too (``Encrypted``'s option).
        index_column: the blind-index column kept beside the value, if any.
        normalizer: applied to a value before its blind index is computed (writes and queries).
        primary_key: the table's primary-key column names (informative).
        bound_as: ``(old_table, old_column)`` of a renamed column whose older values are still
            bound to the old names (``Encrypted``'s option): read at either place, written at its own.
        from_: an adoption source (:mod:`fieldcrypt.foreign`): the column holds another library's
            ciphertexts, which ``encrypt`` reads with the old keys instead of taking them for plaintext.
        tenant_column: the column whose value chooses each row's keyring (``Encrypted``'s
            ``tenant`` option); the value methods then take ``tenant=``.
        subject_column: the column whose value names each row's subject (``Encrypted``'s
            ``subject`` option): values are under that subject's own key, and the value methods
            take ``subject=``.
    """

    table: str
    column: str
    keyring: Keyring | TenantKeyrings | str
    codec: codecs.Codec[Any] | str | None = None
    storage: Storage | str = Storage.BINARY
    bind_row: bool = False
    index_column: str | None = None
    normalizer: Callable[[Any], Any] | None = field(default=None, compare=False)
    primary_key: tuple[str, ...] = ()
    bound_as: tuple[str, str] | None = None
    from_: ForeignFormat | None = field(default=None, compare=False)
    tenant_column: str | None = None
    subject_column: str | None = None

    def __post_init__(self) -> None:
        if self.subject_column is not None and self.index_column is not None:
            raise ConfigurationError(
                f"{self.table}.{self.column}: a per-subject column has no blind index (its tokens "
                "would outlive the subject's erasure)"
            )
        if isinstance(self.codec, str):
            object.__setattr__(self, "codec", codecs.named(self.codec))
        try:
            object.__setattr__(self, "storage", Storage(self.storage))
        except ValueError:
            raise ConfigurationError(f"storage must be 'binary' or 'text', not {self.storage!r}") from None

    @property
    def the_codec(self) -> codecs.Codec[Any]:
        """The codec, or a clear error when the spec was built without the column's type."""
        if not isinstance(self.codec, codecs.Codec):
            raise ConfigurationError(
                f"{self.table}.{self.column}: reading or writing values needs the column's type: "
                "build the spec from the model (fieldcrypt.sqlalchemy.column_spec, "
                "op.encrypt_column(..., type_=Encrypted(...)), --metadata module:Base) or pass codec="
            )
        return self.codec

    @property
    def the_storage(self) -> Storage:
        return Storage(self.storage)

    def resolve_keyring(self, tenant: object = None) -> Keyring:
        """The keyring of a value of this column: the column's, or for a per-tenant column the
        keyring of ``tenant`` (the row's value of ``tenant_column``).

        Raises:
            ConfigurationError: a per-tenant column without a usable ``tenant``, or a tenant given
                for a column that has none.
        """
        if self.tenant_column is None:
            if tenant is not None:
                raise ConfigurationError(f"{self.table}.{self.column} has no tenant column: drop tenant=")
            if isinstance(self.keyring, TenantKeyrings):
                raise ConfigurationError(
                    f"{self.table}.{self.column}: TenantKeyrings need the column's tenant_column"
                )
            return self.keyring if isinstance(self.keyring, Keyring) else get_keyring(self.keyring)
        if tenant is None:
            raise ConfigurationError(
                f"{self.table}.{self.column}: its keyring is chosen by the row's {self.tenant_column}, "
                "which is not given (None); pass tenant= (every row must name its tenant)"
            )
        tenants = self.keyring if isinstance(self.keyring, TenantKeyrings) else None
        if tenants is None and isinstance(self.keyring, str):
            tenants = get_tenant_keyrings(self.keyring)
        if tenants is None:
            raise ConfigurationError(
                f"{self.table}.{self.column} chooses its keyring by {self.tenant_column}: give it "
                "TenantKeyrings (or their registered name), not one Keyring"
            )
        return tenants.keyring_for(tenant)  # type: ignore[arg-type]  # checked there

    def place(self, row: RowKey | None = None) -> Place:
        """Where a value of ``row`` is bound: the column, plus the row for row-bound columns."""
        if not self.bind_row:
            return self.column_place  # one object: its encoding is computed once, not per row
        if row is None:
            raise ConfigurationError(f"{self.table}.{self.column} is bound to its row: pass row=")
        return Place(self.table, self.column, row)

    def places(self, row: RowKey | None = None) -> tuple[Place, ...]:
        """Where a value of ``row`` may be bound: its own place, then the old one (``bound_as``)."""
        own = self.place(row)
        if self.bound_as is None:
            return (own,)
        return (own, Place(*self.bound_as, row if self.bind_row else None))

    @functools.cached_property
    def column_place(self) -> Place:
        return Place(self.table, self.column)

    def index_place(self) -> Place:
        return self.column_place

    # -- values -----------------------------------------------------------------------------

    def encrypt(
        self, value: Any, row: RowKey | None = None, *, tenant: object = None, subject: object = None
    ) -> bytes | str:
        """The stored form of ``value``: v1 bytes, or their base64 text for text storage."""
        keyring = self.resolve_keyring(tenant)
        return self.to_stored(self.seal_bytes(keyring, self._plain(value), self.place(row), subject))

    def decrypt(
        self,
        stored: bytes | bytearray | memoryview | str | Sealed,
        row: RowKey | None = None,
        *,
        tenant: object = None,
        subject: object = None,
    ) -> Any:
        """The Python value of a stored (or :class:`Sealed`) ciphertext.

        Raises:
            DecryptionError: not a ciphertext of this column (and row), or not of its type.
        """
        place = self.place(row)
        if isinstance(stored, Sealed):
            blob = stored.blob
        else:
            try:
                blob = from_stored(stored)
            except fmt.MalformedCiphertext:
                raise fmt.MalformedCiphertext(**place.where()) from None
        keyring = self.resolve_keyring(tenant)
        return self.the_codec.decode(self.open_bytes(keyring, blob, self.places(row), subject), place)

    def seal(
        self, value: Any, row: RowKey | None = None, *, tenant: object = None, subject: object = None
    ) -> Sealed:
        """``value`` encrypted for this column (and ``row``, ``tenant`` and ``subject``), to pass to
        a Core statement as is; the way to UPDATE a row-bound, per-tenant or per-subject column
        outside the ORM. Carries the blind-index token."""
        blob = self.seal_bytes(self.resolve_keyring(tenant), self._plain(value), self.place(row), subject)
        return Sealed(blob, self.index(value, tenant=tenant))

    def seal_bytes(self, keyring: Keyring, data: bytes, place: Place, subject: object = None) -> bytes:
        """``data`` encrypted at ``place`` by ``keyring``: under its current data key, or for a
        per-subject column under ``subject``'s own key.

        Raises:
            ConfigurationError: a per-subject column without its subject, or a subject given for a
                column that has none.
            KeyDestroyedError: the subject was shredded.
        """
        if self._subject(subject) is None:
            return keyring.encrypt(data, place)
        return keyring.encrypt_for_subject(subject, data, place)  # type: ignore[arg-type]  # checked

    def open_bytes(
        self, keyring: Keyring, blob: bytes, places: Sequence[Place], subject: object = None
    ) -> bytes:
        """Decrypt ``blob`` at the first of ``places`` it opens at (as :func:`open_at`), with
        ``keyring``'s data keys, or for a per-subject column with ``subject``'s own key.

        Raises:
            DecryptionError: it opens at none of them; KeyDestroyedError when the subject was shredded.
        """
        if self._subject(subject) is None:
            return open_at(keyring, blob, places)
        first: DecryptionError | None = None
        for place in places:
            try:
                return keyring.decrypt_for_subject(subject, blob, place)  # type: ignore[arg-type]
            except DecryptionError as exc:
                first = first or exc
        assert first is not None, "open_bytes needs at least one place"
        raise first

    def _subject(self, subject: object) -> object:
        if self.subject_column is None:
            if subject is not None:
                raise ConfigurationError(f"{self.table}.{self.column} has no subject column: drop subject=")
            return None
        if subject is None:
            raise ConfigurationError(
                f"{self.table}.{self.column} is encrypted per subject, by {self.subject_column}, which "
                "this row does not give (None); pass subject="
            )
        return subject

    def index(self, value: Any, *, tenant: object = None) -> bytes | None:
        """The blind-index token for ``value`` (None when the column is not searchable)."""
        if self.index_column is None or value is None:
            return None
        if self.normalizer is not None:
            value = self.normalizer(value)
        keyring = self.resolve_keyring(tenant)
        index_records.check(keyring, self.index_place(), self.normalizer, writing=True)
        return keyring.blind_index(self._plain(value), self.index_place())

    def _plain(self, value: Any) -> bytes:
        try:
            return self.the_codec.to_bytes(value)
        except TypeError as exc:
            raise TypeError(f"{self.table}.{self.column}: {exc}") from None

    # -- stored values, for the batch engine ----------------------------------------------------

    def to_stored(self, blob: bytes) -> bytes | str:
        return to_stored(blob, self.the_storage)

    def as_blob(self, stored: object) -> bytes | None:
        """The v1 bytes a stored value holds, or None when it is plaintext (fieldcrypt.adoption).

        Raises:
            StorageMismatchError: the value is a ciphertext in the other storage form (the column
                was written with another ``storage`` than this spec says): never taken for plaintext.
        """
        text = self.the_storage is Storage.TEXT
        if self.from_ is not None and self.from_.authenticated and self.from_.opens(stored):
            return None  # another library's value (checked first: it may look like a v1 one)
        blob = adoption.ciphertext_in(stored, text=text)
        if blob is None and adoption.ciphertext_in_other_storage(stored, text=text) is not None:
            other = Storage.BINARY if text else Storage.TEXT
            raise StorageMismatchError(
                f"{self.table}.{self.column} holds fieldcrypt ciphertexts stored as {other.value} "
                f"(storage={other.value!r}), not {self.the_storage.value}: declare "
                f"Encrypted(..., storage={other.value!r}) (or pass --metadata, or --storage "
                f"{other.value}); nothing was counted or written"
            )
        return blob

    def plaintext_bytes(self, stored: object) -> bytes:
        """The codec bytes of a plaintext value found in the column (adoption, transitional mode),
        or of another library's ciphertext opened with the adoption source's keys (``from_``).

        Raises:
            ForeignValueError: ``from_`` is set and the value does not open under its keys.
        """
        if self.from_ is not None:
            stored = self.from_.open(stored)
        return adoption.plaintext_bytes(self.the_codec, stored)

    def plaintext_to_store(self, data: bytes, row: RowKey | None = None) -> object:
        """What a decrypted value is written back as (``decrypt_column``): the database's text form."""
        codec = self.the_codec
        if codec.python_type is bytes and self.the_storage is Storage.BINARY:
            return data
        text = _db_text(codec.decode(data, self.place(row)))
        return text if self.the_storage is Storage.TEXT else text.encode("utf-8")


def _db_text(value: object) -> str:
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"  # read as a boolean by PostgreSQL, MariaDB and SQLite alike
    if isinstance(value, enum.Enum):
        return value.name  # SQLAlchemy's Enum stores member names
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")  # the form SQLAlchemy writes for SQLite and MariaDB reads
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
