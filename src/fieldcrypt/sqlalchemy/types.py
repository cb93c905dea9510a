"""``Encrypted``: a column type whose values are encrypted in the application (format v1).

The type holds only hashable, behaviour-defining settings (the keyring by *name*), because
SQLAlchemy's statement cache hashes them. Processors resolve the keyring through
:func:`fieldcrypt.registry.follow`: by name on first use, and again only after a keyring is
registered or replaced (so ``register(..., replace=True)`` takes effect for engines already in use).
The place (table.column) comes from the column the type is attached to: the attach listener in
:mod:`fieldcrypt.sqlalchemy.attach` gives each column its own bound copy.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import types as sat
from sqlalchemy.engine import Dialect

from fieldcrypt import adoption
from fieldcrypt import format as fmt
from fieldcrypt.cardinality import check_index_cardinality
from fieldcrypt.codecs import TextCodec
from fieldcrypt.column import Sealed, open_at
from fieldcrypt.errors import ConfigurationError, DecryptionError, InvalidValueError, QueryNotSupportedError
from fieldcrypt.foreign import ForeignFormat, ForeignValueError
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, RowKey, old_names
from fieldcrypt.reading import as_bytes, column_reader
from fieldcrypt.registry import follow, follow_tenants, get_keyring
from fieldcrypt.sqlalchemy import redaction
from fieldcrypt.sqlalchemy.comparator import EncryptedComparator
from fieldcrypt.storage import Storage
from fieldcrypt.storage import sql as _storage
from fieldcrypt.tenants import TenantKeyrings
from fieldcrypt.writing import column_writer

T = TypeVar("T")

__all__ = ["Encrypted", "Sealed", "Storage"]


class Encrypted(sat.TypeDecorator[T], Generic[T]):
    """A column of ``type_`` values stored as ciphertext (binary by default, or base64 text).

    Args:
        type_: the declared type (String, Integer, Numeric, Date, Enum, JSON, ...); values come
            back as exactly the Python type that went in.
        keyring: name of a keyring registered with :func:`fieldcrypt.register` (required, keyword-only).
        searchable: keep a blind index in ``<column>_bidx`` so ``==`` and ``in_`` work.
        index_column: the blind-index column's name (implies ``searchable``).
        normalizer: applied before indexing on writes and queries (e.g. strip dashes).
        unique: a unique index on the blind-index column (one row per value).
        storage: ``"binary"`` (BYTEA / VARBINARY / BLOB) or ``"text"`` (base64 in a text column).
        bind_row: also bind each value to its row's primary key (must be client-assigned).
        subject: the name of the (plaintext) column holding each row's subject (a user or customer
            id): values are then encrypted under that subject's own key, erased with
            ``fieldcrypt keys shred --subject ID`` (docs/rotation.md, "Erasing one subject"). Like
            ``bind_row``, the subject must be known before the write: values are sealed in the ORM
            flush and in Core parameter dictionaries, and opened in the ORM's load.
        add_index_column: create the index column on the table (Alembic revisions pass False,
            because they declare it on its own).
        place: ``(table, column)``; set by the column attach, pass it only for a type used
            outside a table (e.g. ``bindparam(..., type_=...)``).
        transitional: while ``encrypt_column`` adopts the column, also read its old plaintext
            (docs/rotation.md, Runbook 1); writes are always encrypted, a value shaped like a
            ciphertext must still decrypt, and blind-index queries are refused until the move is
            done. Remove it once ``fieldcrypt status`` shows no plaintext left.
        allow_low_cardinality_index: accept a blind index on a Boolean or a small Enum column,
            which reveals every row's value to anyone who knows one row's (refused otherwise).
        bound_as: ``(old_table, old_column)`` after a rename: values written before it stay bound
            to their old place, so reads also accept that place and searches also look for its
            tokens; writes use the column's own place. ``op.rebind_column`` moves the old values
            (docs/rotation.md, "Schema changes"); remove it once that has run, because until then
            a value copied from the old place reads here too.
        from_: while ``encrypt_column(..., from_=...)`` moves the column off another library
            (:mod:`fieldcrypt.foreign`: sqlalchemy-utils, Fernet), also read its values with the
            old keys; writes are fieldcrypt's, blind-index queries are refused until the move is
            done. Not in ``repr`` (it holds keys): pass it to the operation as well.
        tenant: the name of the column holding each row's tenant id: the keyring is then the
            tenant's, from the :class:`~fieldcrypt.tenants.TenantKeyrings` registered as
            ``keyring``, chosen from the row before the write (like ``bind_row``, values are
            sealed in the ORM flush and Core parameter dictionaries; reads open in the ORM's load
            or with ``ColumnSpec.decrypt(..., tenant=)``), and searches name the tenant
            (``where(User.tenant_id == t, User.ssn == v)``). docs/sqlalchemy.md, "Keys per tenant".
    """

    impl = sat.LargeBinary
    cache_ok = True
    comparator_factory = EncryptedComparator

    def __init__(
        self,
        type_: sat.TypeEngine[T] | type[sat.TypeEngine[T]],
        *,
        keyring: str,
        searchable: bool = False,
        index_column: str | None = None,
        normalizer: Callable[[Any], Any] | None = None,
        unique: bool = False,
        storage: Storage = "binary",
        bind_row: bool = False,
        add_index_column: bool = True,
        place: tuple[str, str] | None = None,
        transitional: bool = False,
        allow_low_cardinality_index: bool = False,
        bound_as: tuple[str, str] | None = None,
        from_: ForeignFormat | None = None,
        tenant: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__()
        # The listeners that bind columns and keep blind indexes go in with the first encrypted
        # type, not at import (attach imports this module, hence the import here).
        from fieldcrypt.sqlalchemy import attach

        attach.install()
        inner = sat.to_instance(type_)
        if isinstance(inner, Encrypted):
            raise ConfigurationError("Encrypted(Encrypted(...)) would encrypt twice; use one")
        if storage not in ("binary", "text"):
            raise ConfigurationError(f"storage must be 'binary' or 'text', not {storage!r}")
        if not keyring or not isinstance(keyring, str):
            raise ConfigurationError("keyring must be the name of a registered keyring")
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise ConfigurationError("tenant must be the name of the column holding the tenant id")
        if normalizer is not None and not isinstance(normalizer, Hashable):
            raise ConfigurationError("normalizer must be a hashable callable (a function)")
        if searchable or index_column or unique:
            check_index_cardinality(
                f"Encrypted({inner!r}, searchable=True)",
                _value_count(inner),
                allowed=allow_low_cardinality_index,
            )
        bound_as = old_names(bound_as)
        if subject is not None and (not isinstance(subject, str) or not subject):
            raise ConfigurationError("subject must be the name of the column holding the subject id")
        if subject is not None and (searchable or index_column or unique):
            # A token is an HMAC under the keyring's shared index key: it would outlive the
            # subject's erasure, and a low-entropy value (an SSN) can be found again by guessing.
            raise ConfigurationError(
                "a subject column cannot be searchable: its blind-index tokens would survive the "
                "subject's erasure (keys shred --subject); drop searchable/unique or subject"
            )
        self.subject = subject
        self._codec = _storage.codec_for(inner)
        self.type_ = inner
        self.keyring = keyring
        self.searchable = bool(searchable or index_column or unique)
        self.index_column = index_column
        self.normalizer = normalizer
        self.unique = unique
        self.storage = storage
        self.bind_row = bind_row
        self.tenant = tenant
        self.add_index_column = add_index_column
        self.place = place
        self.transitional = bool(transitional)
        self.allow_low_cardinality_index = bool(allow_low_cardinality_index)
        self.bound_as = bound_as
        if from_ is not None and not isinstance(from_, ForeignFormat):
            raise ConfigurationError(
                "from_ must be an adoption source: fieldcrypt.foreign.SqlalchemyUtils or Fernet"
            )
        self.from_ = from_
        # Per-value helpers of the row-sealing path (row_binding), made once per place: keyed by
        # the place they were made for, since copies (bound_to) share this dict's contents.
        self._tenants_now: Callable[[], TenantKeyrings] | None = None  # registry.follow_tenants
        self._per_place: tuple[tuple[str, str] | None, tuple[Place, ...], Callable[[Any], bytes]] | None = (
            None
        )
        if storage == "text":
            self.impl = self.impl_instance = sat.Text()  # type: ignore[assignment]

    @property
    def _static_cache_key(self) -> Any:
        # SQLAlchemy keys a cache_ok type by the attributes named like its positional-or-keyword
        # __init__ parameters, so it would never see these keyword-only options; every one of them
        # changes what gets bound, so the key names them all.
        inner = self.type_._static_cache_key
        return (Encrypted, inner, *((name, getattr(self, name)) for name in _CACHE_KEY_OPTIONS))

    # -- what the column is ----------------------------------------------------------------

    @property
    def python_type(self) -> type[Any]:
        return self.type_.python_type

    @property
    def codec(self) -> Any:
        return self._codec

    @property
    def index_name(self) -> str | None:
        """The blind-index column's name, or None when the column is not searchable."""
        if not self.searchable:
            return None
        if self.index_column:
            return self.index_column
        return f"{self._where()[1]}_bidx"

    @property
    def sealed_before_write(self) -> bool:
        """Its values need their row to be encrypted (``bind_row``, ``tenant``, ``subject``): sealed
        where the row is known, before the bind processor, which sees the value alone."""
        return self.bind_row or self.tenant is not None or self.subject is not None

    def bound_to(self, table: str, column: str) -> Encrypted[T]:
        """A copy of this type bound to ``table.column`` (what the column attach installs)."""
        bound = self.copy()
        bound.place = (table, column)
        return bound

    def _where(self) -> tuple[str, str]:
        if self.place is None:
            raise ConfigurationError(
                f"{self!r} is not attached to a table column, so it has no place to bind "
                "ciphertexts to; use it as a column type, or pass place=(table, column)"
            )
        return self.place

    def places(self, row: RowKey | None = None, table: str | None = None) -> tuple[Place, ...]:
        """Where this column's values may be bound: its own place (in ``table``, where a
        ``schema_translate_map`` moves the declared one), then its old one (``bound_as``)."""
        if row is None and table is None:
            return self._sealing()[0]
        declared, column = self._where()
        own = Place(table or declared, column, row)
        return (own,) if self.bound_as is None else (own, Place(*self.bound_as, row))

    def sealing_encoder(self) -> Callable[[Any], bytes]:
        """:meth:`encoder`, made once per place (it runs per value when values are sealed)."""
        return self._sealing()[1]

    def _sealing(self) -> tuple[tuple[Place, ...], Callable[[Any], bytes]]:
        made = self._per_place
        if made is None or made[0] != self.place:
            own = Place(*self._where())
            places = (own,) if self.bound_as is None else (own, Place(*self.bound_as))
            made = self._per_place = (self.place, places, self.encoder())
        return made[1], made[2]

    def _keyring(self) -> Keyring:
        return get_keyring(self.keyring)

    def row_keyring(self, tenant: Any = None) -> Keyring:
        """The keyring of this column's values in a row whose tenant column holds ``tenant``.

        Raises:
            ConfigurationError: a per-tenant column and no usable tenant (None: the row does not
                name its tenant), or the keyring registered under the name is of the other kind.
        """
        if self.tenant is None:
            return get_keyring(self.keyring)
        if tenant is None:
            table, column = self._where()
            raise ConfigurationError(
                f"{table}.{column}: its keyring is chosen by the row's {self.tenant}, which is not "
                "known before the write (None or not given); set it on every row written"
            )
        tenants_now = self._tenants_now
        if tenants_now is None:
            tenants_now = self._tenants_now = follow_tenants(self.keyring)
        return tenants_now().keyring_for(tenant)

    def index_plaintext(self, value: Any) -> bytes:
        """The bytes a blind-index token is computed over, on writes and queries alike.

        Raises:
            TypeError: a value of the wrong type, named with the table and column.
        """
        table, column = self._where()
        if self.normalizer is not None:
            value = self.normalizer(value)
        try:
            return self._codec.to_bytes(value)
        except TypeError as exc:
            raise TypeError(f"{table}.{column}: {exc}") from None

    def encoder(self) -> Callable[[Any], bytes]:
        """The codec's ``to_bytes``, checking the declared ``String(n)`` length first.

        A ciphertext's length tells the database nothing it could check, so each database would
        refuse (or not) by its own rule; the length is enforced here, alike on all of them.
        """
        to_bytes = self._codec.to_bytes
        inner = self.type_
        limit = inner.length if isinstance(inner, sat.String) and not isinstance(inner, sat.Enum) else None
        if not limit:
            return to_bytes
        table, column = self._where()
        # A text column's str (the common case) is encoded here as TextCodec.to_bytes would
        # (UTF-8, a lone surrogate raising alike); any other value takes the codec's own path.
        text = type(self._codec) is TextCodec

        def bounded(value: Any) -> bytes:
            if type(value) is str:
                if len(value) > limit:
                    raise InvalidValueError(
                        f"{table}.{column}: the value is longer than the {limit} characters of its "
                        f"declared {inner!r}; nothing was written"
                    )
                if text:
                    return value.encode()
            return to_bytes(value)

        return bounded

    def load_dialect_impl(self, dialect: Dialect) -> sat.TypeEngine[Any]:
        return _storage.column_type(self.type_, self.storage, dialect)

    # -- processors -------------------------------------------------------------------------
    # SQLAlchemy builds these once per dialect (per engine) and caches them. Overriding them,
    # rather than process_bind_param / process_result_value, lets each closure hold its Place,
    # codec and keyring, so the per-value path does no registry lookup and builds no Place. The
    # impl type's own processor is still applied, as TypeDecorator would.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        table, column = self._where()
        redaction.watch(dialect)  # a failed statement must not quote this column's plaintext
        impl = self.impl_instance.bind_processor(dialect)
        text = self.storage == "text"
        if self.sealed_before_write:
            return self._sealed_writer(table, column, text, impl)
        to_bytes = self.encoder()
        # The registered keyring's current key, resolved once (fieldcrypt.writing).
        seal = column_writer(self.keyring, Place(table, column))

        def process(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is Sealed:
                blob: Any = _checked_sealed(value, table, column)
            else:
                try:
                    plain = to_bytes(value)
                except TypeError as exc:
                    raise TypeError(f"{table}.{column}: {exc}") from None
                blob = seal(plain)
            if text:
                blob = fmt.to_text(blob)
            return blob if impl is None else impl(blob)

        return process

    def _sealed_writer(
        self, table: str, column: str, text: bool, impl: Callable[[Any], Any] | None
    ) -> Callable[[Any], Any]:
        """The bind processor of a column sealed before the write: it takes only ``Sealed``."""
        what_row = (
            f"per tenant (by {self.tenant})"
            if self.tenant is not None
            else f"encrypted per subject (by {self.subject})"
            if self.subject
            else "bound to its row"
        )

        def process(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is not Sealed:
                raise ConfigurationError(
                    f"{table}.{column} is {what_row}: write it through the ORM or as "
                    "conn.execute(insert(table), [{...}]) with the row's values, so the row is known"
                )
            blob = _checked_sealed(value, table, column)
            stored: Any = fmt.to_text(blob) if text else blob
            return impl(stored) if impl is not None else stored

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        table, column = self._where()
        place = Place(table, column)
        impl = self.impl_instance.result_processor(dialect, coltype)
        text = self.storage == "text"
        sealed_before = self.sealed_before_write
        open_value = self._opener()
        plaintext = _plaintext_reader(self._codec, place) if self.transitional else None
        foreign = _foreign_reader(self._codec, place, self.from_, text) if self.from_ is not None else None

        plain_v1 = plaintext is None and foreign is None and self.bound_as is None
        if plain_v1 and not sealed_before and impl is None:
            # The common case (no row binding, not transitional, not renamed), kept lean: this runs
            # once per value read (fieldcrypt.reading resolves the rest once per column).
            read = column_reader(self.keyring, place, self._codec)
            if not text:
                return read

            def read_text(value: Any) -> Any:
                return None if value is None else read(_from_stored(value, True, place))

            return read_text

        def process(value: Any) -> Any:
            if impl is not None:
                value = impl(value)
            if value is None:
                return None
            if foreign is not None and (opened := foreign(value)) is not _V1:
                return opened
            if plaintext is not None:
                # Transitional: the shared rule of fieldcrypt.adoption says which values are
                # ciphertext (and must decrypt below); the others are the column's old plaintext.
                found = adoption.ciphertext_in(value, text=text)
                if found is None:
                    return plaintext(value)
                blob = found
            else:
                blob = _from_stored(value, text, place)
            if sealed_before:
                return Sealed(blob)  # needs its row: the ORM load hook or ColumnSpec.decrypt
            return open_value(blob)

        return process

    def _opener(self) -> Callable[[bytes], Any]:
        """Decrypts a v1 value of this column into its Python value (the keyring registered now)."""
        decode = self._codec.decode
        keyring_now = follow(self.keyring)
        places = self.places()
        place = places[0]
        if len(places) > 1:
            return lambda blob: decode(open_at(keyring_now(), blob, places), place)

        def open_value(blob: bytes) -> Any:
            return decode(keyring_now().decrypt(blob, place), place)

        return open_value

    def literal_processor(self, dialect: Dialect) -> Callable[[Any], str]:
        # Refuse before any value is seen: SQLAlchemy's wrapper of a failing literal processor
        # quotes the value in its message, which would put the plaintext in the exception.
        table, column = self.place or ("?", "?")
        raise QueryNotSupportedError(
            f"refusing to render a value of encrypted column {table}.{column} as a SQL literal "
            "(literal_binds / offline SQL would print it in clear); use bound parameters"
        )

    def __repr__(self) -> str:
        args = [repr(self.type_), f"keyring={self.keyring!r}"]
        for name, default in _REPR_DEFAULTS:
            value = getattr(self, name)
            if value != default:
                shown = _qualname(value) if name == "normalizer" else repr(value)
                args.append(f"{name}={shown}")
        return f"Encrypted({', '.join(args)})"


_REPR_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("searchable", False),
    ("index_column", None),
    ("normalizer", None),
    ("unique", False),
    ("storage", "binary"),
    ("bind_row", False),
    ("add_index_column", True),
    ("transitional", False),
    ("allow_low_cardinality_index", False),
    ("bound_as", None),
    ("tenant", None),
    ("subject", None),
)
_CACHE_KEY_OPTIONS = ("keyring", "place", "from_", *(name for name, _ in _REPR_DEFAULTS))
_V1 = object()  # _foreign_reader: "a fieldcrypt value, decrypt it as usual"


def _value_count(inner: sat.TypeEngine[Any]) -> int | None:
    """How many values a declared type can hold, when that is a small fixed set (None otherwise)."""
    if isinstance(inner, sat.Boolean):
        return 2
    if isinstance(inner, sat.Enum):
        return len(inner.enums)
    return None


def _qualname(func: object) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _plaintext_reader(codec: Any, place: Place) -> Callable[[Any], Any]:
    """Reads a pre-adoption plaintext value (transitional mode); never returns a damaged ciphertext."""

    def read(value: Any) -> Any:
        try:
            return codec.from_bytes(adoption.plaintext_bytes(codec, value))
        except (adoption.DamagedCiphertext, UnicodeDecodeError):
            raise DecryptionError(**place.where()) from None
        except ConfigurationError as exc:
            raise ConfigurationError(f"{place.table}.{place.column} (transitional read): {exc}") from None

    return read


def _foreign_reader(codec: Any, place: Place, source: ForeignFormat, text: bool) -> Callable[[Any], Any]:
    """Reads another library's value during ``encrypt_column(..., from_=...)``; ``_V1`` for a
    fieldcrypt value. A value that is neither raises the opaque DecryptionError."""

    def read(value: Any) -> Any:
        if not source.authenticated and adoption.ciphertext_in(value, text=text) is not None:
            return _V1  # an unauthenticated format could "open" a v1 value into garbage
        try:
            old = source.open(value)
        except ForeignValueError:
            if adoption.ciphertext_in(value, text=text) is not None:
                return _V1
            raise DecryptionError(**place.where()) from None
        try:
            return codec.from_bytes(adoption.plaintext_bytes(codec, old))
        except (ConfigurationError, ValueError, TypeError):
            raise DecryptionError(**place.where()) from None

    return read


def _checked_sealed(value: Sealed, table: str, column: str) -> bytes:
    """The ciphertext a ``Sealed`` value carries, refused unless it is shaped like format v1."""
    blob = value.blob
    if not fmt.looks_like_ciphertext(blob):
        raise ConfigurationError(f"{table}.{column}: a Sealed value must hold a v1 ciphertext")
    return blob


def _from_stored(value: Any, text: bool, place: Place) -> bytes:
    if text:
        try:
            return fmt.from_text(value)
        except fmt.MalformedCiphertext:
            raise DecryptionError(**place.where()) from None
    return value if type(value) is bytes else as_bytes(value, place)
