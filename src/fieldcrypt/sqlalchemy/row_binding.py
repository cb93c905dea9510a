"""Row binding: a ciphertext also bound to its row's primary key (``Encrypted(..., bind_row=True)``).

A bind processor sees a value, never its row, so row-bound values are sealed before they reach
it, where the row is known: in mapper ``before_insert`` / ``before_update`` hooks for the ORM and
in a ``before_execute`` hook for Core inserts given as parameter dictionaries (executemany,
``bulk_insert_mappings``). Reads come back as :class:`Sealed` from the result processor and the
ORM opens them on ``load`` / ``refresh`` with the instance's identity. The primary key must be
known before the write: a database-assigned key (autoincrement) is a clear error, never a silent
downgrade to table/column binding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnDefault, event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import flag_modified, set_committed_value
from sqlalchemy.sql import operators
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

from fieldcrypt.column import open_at
from fieldcrypt.errors import ConfigurationError, DecryptionError, QueryNotSupportedError
from fieldcrypt.place import Place, RowKey
from fieldcrypt.reading import row_reader
from fieldcrypt.registry import get_keyring
from fieldcrypt.sqlalchemy import _compat, blind_index, translate, unique
from fieldcrypt.sqlalchemy.types import Encrypted, Sealed
from fieldcrypt.storage.row_keys import canonical_key

_STASH = "fieldcrypt_row_bound_plaintext"


def row_bound_columns(table: Any) -> list[Column[Any]]:
    """The columns whose values are sealed before the write: row-bound or per subject."""
    return [c for c in table.columns if isinstance(c.type, Encrypted) and c.type.sealed_before_write]


def subject_column(table: Any, type_: Encrypted[Any]) -> Column[Any]:
    """The column naming the subject of ``type_``'s values (its ``subject`` option) in ``table``.

    Raises:
        ConfigurationError: no such column, or it is itself encrypted (the subject must be readable
            to choose the key that reads the rest).
    """
    found: Column[Any] | None = next((c for c in table.columns if c.name == type_.subject), None)
    if found is None or isinstance(found.type, Encrypted):
        where = ".".join(type_._where())
        raise ConfigurationError(
            f"{where} is encrypted per subject, by column {type_.subject!r}, which "
            + (
                "is encrypted: the subject column must be plaintext"
                if found is not None
                else "the table lacks"
            )
        )
    return found


def row_key(table: Any, values: Mapping[str, Any] | Sequence[Any], column: str) -> RowKey:
    """The Place row for a primary key: canonical (:mod:`fieldcrypt.storage.row_keys`), a scalar
    for one column, else a tuple in the primary-key constraint's order."""
    pk = list(table.primary_key.columns)
    if isinstance(values, Mapping):
        parts: list[Any] = [values.get(c.key) for c in pk]
    else:
        parts = list(values)
    if not parts or any(p is None for p in parts):
        raise ConfigurationError(
            f"{table.name}.{column} is bound to its row, but the primary key is not known before "
            "the write (assigned by the database, e.g. autoincrement); assign it in the "
            "application (e.g. default=uuid.uuid4) or set bind_row=False"
        )
    return canonical_key([c.type for c in pk], parts, f"{table.name}.{column}")


def python_default(column: Column[Any]) -> Any:
    """The value a key column's Python-side default gives (``default=uuid.uuid4``), or None.

    Evaluated here, before the write, so the row is known when its values are sealed; SQLAlchemy
    then inserts the value we set instead of calling the default again.
    """
    default = column.default
    if not isinstance(default, ColumnDefault) or not (default.is_scalar or default.is_callable):
        return None
    if default.is_scalar:
        return default.arg
    try:
        # SQLAlchemy wraps a no-argument callable to take the execution context; the wrapper
        # ignores it. A default that reads the context cannot be computed before the write.
        return default.arg(None)
    except Exception:
        raise ConfigurationError(
            f"{column.table.name}.{column.name}: its default needs the statement's context, so the "
            "row is not known before the write; use a default that takes no argument (uuid.uuid4)"
        ) from None


def seal(
    type_: Encrypted[Any], value: Any, row: RowKey | None, table: str | None = None, subject: Any = None
) -> Sealed:
    """Encrypt ``value`` for its column, row (row-bound columns) and subject (per-subject columns);
    carries the blind-index token when searchable. ``table``: the place's table where a
    ``schema_translate_map`` moves the declared one."""
    declared, column = type_._where()
    table = table or declared
    try:
        plain = type_.encoder()(value)
    except TypeError as exc:
        raise TypeError(f"{table}.{column}: {exc}") from None
    keyring = get_keyring(type_.keyring)
    place = Place(table, column, row if type_.bind_row else None)
    if type_.subject is not None:
        blob = keyring.encrypt_for_subject(_known_subject(type_, subject), plain, place)
    else:
        blob = keyring.encrypt(plain, place)
    if not type_.searchable:
        return Sealed(blob)
    return Sealed(blob, blind_index.token(type_, value), unique.older_tokens(type_, value))


def open_sealed(
    type_: Encrypted[Any], sealed: Sealed, row: RowKey | None, table: str | None = None, subject: Any = None
) -> Any:
    """Decrypt a value read from ``row`` (of ``table``, where a ``schema_translate_map`` moved the
    declared one) of ``subject`` (per-subject columns). Raises DecryptionError naming the row."""
    places = type_.places(row if type_.bind_row else None, table)
    keyring = get_keyring(type_.keyring)
    if type_.subject is None:
        return type_.codec.decode(open_at(keyring, sealed.blob, places), places[0])
    known = _known_subject(type_, subject)
    first: Exception | None = None
    for place in places:  # a renamed column: its own place, then its old one (as open_at)
        try:
            return type_.codec.decode(keyring.decrypt_for_subject(known, sealed.blob, place), places[0])
        except DecryptionError as exc:
            first = first or exc
    assert first is not None
    raise first


def _known_subject(type_: Encrypted[Any], subject: Any) -> Any:
    if subject is None:
        table, column = type_._where()
        raise ConfigurationError(
            f"{table}.{column} is encrypted per subject, by {type_.subject}, which this row does not "
            "give (None, or not set before the write / not loaded with it)"
        )
    return subject


def sealed_reader(type_: Encrypted[Any], table: str | None = None) -> Callable[[bytes, RowKey], Any]:
    """``open_sealed`` for one column's values (read from ``table``, as ``open_sealed``),
    ``read(sealed.blob, row)``, resolved once (:func:`fieldcrypt.reading.row_reader`); a renamed
    column (``bound_as``) tries both places through ``open_sealed``."""
    if type_.bound_as is not None:
        return lambda blob, row: open_sealed(type_, Sealed(blob), row, table)
    return row_reader(type_.keyring, type_.places(None, table)[0], type_.codec)


def seal_insert_params(
    statement: Insert,
    multiparams: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    translation: translate.Translation | None = None,
) -> tuple[Sequence[Mapping[str, Any]], Mapping[str, Any]]:
    """Seal row-bound values of a Core INSERT given as parameter dictionaries, to the table
    the statement reaches (``translation``: its ``schema_translate_map``)."""
    columns = row_bound_columns(statement.table)
    if not columns:
        return multiparams, params
    place_table = translate.effective_name(statement.table, translation)
    if multiparams:
        return [_sealed(statement.table, columns, p, place_table) for p in multiparams], params
    return multiparams, _sealed(statement.table, columns, params, place_table) if params else params


def _sealed(
    table: Any, columns: list[Column[Any]], params: Mapping[str, Any], place_table: str
) -> Mapping[str, Any]:
    todo = [c for c in columns if params.get(c.key) is not None and type(params[c.key]) is not Sealed]
    if not todo:
        return params
    bound = [c for c in todo if _enc(c).bind_row]
    subjects = {c.key: subject_column(table, _enc(c)) for c in todo if _enc(c).subject is not None}
    needed = [*(table.primary_key.columns if bound else ()), *subjects.values()]
    missing = {c.key: python_default(c) for c in needed if params.get(c.key) is None}
    params = {**params, **{k: v for k, v in missing.items() if v is not None}}
    row = row_key(table, params, bound[0].name) if bound else None
    return {
        **params,
        **{
            c.key: seal(
                _enc(c),
                params[c.key],
                row,
                place_table,
                params.get(subjects[c.key].key) if c.key in subjects else None,
            )
            for c in todo
        },
    }


def seal_update(
    conn: Connection,
    statement: Update,
    multiparams: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    translation: translate.Translation | None = None,
) -> tuple[Update, Sequence[Mapping[str, Any]], Mapping[str, Any]]:
    """Seal row-bound values of an UPDATE whose WHERE names one row by its whole primary key.

    That is the shape of ORM ``bulk_update_mappings``, ORM bulk UPDATE by primary key
    (``session.execute(update(Model), [...])``) and ``update(t).where(t.c.id == ...)``: each
    parameter set (or the statement's own ``.values()``) is sealed to the row its key names, or
    to the new key when the UPDATE also changes the primary key, in the table the statement
    reaches (``translation``: its ``schema_translate_map``).

    Raises:
        QueryNotSupportedError: a row-bound column is set by an UPDATE that does not name its
            row by primary key (``WHERE`` on another column, or no ``WHERE``); or the primary key
            changes while a row-bound column keeps its value (bound to the old key, it would no
            longer decrypt).
    """
    columns = row_bound_columns(statement.table)
    if not columns:
        return statement, multiparams, params
    table: Any = statement.table
    inline = {
        target if isinstance(target, str) else target.key for target in _compat.update_targets(statement)
    }
    keys = {c.key for c in table.primary_key.columns}
    # A per-subject column's subject may be set by the same UPDATE's .values() too (and a subject
    # changed alone is refused, like a key).
    keys |= {subject_column(table, _enc(c)).key for c in columns if _enc(c).subject is not None}
    bound = {c.key for c in columns}
    compiled = statement.compile(dialect=conn.dialect).params if inline & (keys | bound) else {}
    rows = _UpdatedRows(
        table,
        columns,
        _pinned_primary_key(statement),
        {k: compiled.get(k) for k in inline & (keys | bound)},
        translate.effective_name(table, translation),
        _where_pins(statement),
    )
    if multiparams:
        multiparams = [rows.sealed(p, p) for p in multiparams]
    elif params:
        params = rows.sealed(params, params)
    elif inline & keys:
        rows.sealed({}, {})  # refuses a key change that leaves row-bound values behind
    if inline & bound:
        given = {k: v for k, v in rows.inline.items() if k in bound}
        sealed = rows.sealed(given, params)
        changed = {k: v for k, v in sealed.items() if v is not given[k]}
        if changed:
            statement = statement.values(changed)
    return statement, multiparams, params


@dataclass(frozen=True)
class _UpdatedRows:
    """What an UPDATE of a row-bound table tells about the rows it writes."""

    table: Any
    columns: list[Column[Any]]  # its row-bound columns
    pins: list[BindParameter[Any]] | None  # the WHERE's primary-key parameters, in key order
    inline: Mapping[str, Any]  # the key and row-bound values its .values() assign
    place_table: str  # the places' table, after schema_translate_map
    where: Mapping[str, BindParameter[Any]]  # what the WHERE sets columns equal to (the subject)

    def sealed(self, values: Mapping[str, Any], params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``values`` with each plaintext of a row-bound column sealed to the row the WHERE
        names (or to the new key, when ``params`` or the statement's ``.values()`` assign one)."""
        table = self.table
        assigned = {**self.inline, **{k: v for k, v in params.items() if k in table.c}}
        moved = [c for c in table.primary_key.columns if c.key in assigned]
        if moved:
            kept = [c for c in self.columns if _enc(c).bind_row and c.key not in assigned]
            if kept:
                raise QueryNotSupportedError(
                    f"{table.name}.{kept[0].name} is bound to its row's primary key, and this "
                    f"statement moves the row to a new {table.name}.{moved[0].name} without writing "
                    "it: its value would no longer decrypt; change the key through the ORM (which "
                    "re-encrypts the row's values) or set every row-bound column in the same UPDATE"
                )
        for column in self.columns:
            type_ = _enc(column)
            if (
                type_.subject is not None
                and column.key not in assigned
                and subject_column(table, type_).key in assigned
            ):
                raise QueryNotSupportedError(
                    f"{table.name}.{column.name} is encrypted per subject (by {type_.subject}): a "
                    f"statement changing {type_.subject} must write {column.name} too (its value is under "
                    "the old subject's key and would no longer read); write both, or use the ORM"
                )
        todo = [
            c for c in self.columns if values.get(c.key) is not None and type(values[c.key]) is not Sealed
        ]
        if not todo:
            return values
        if not any(_enc(c).bind_row for c in todo):
            return {
                **values,
                **{
                    c.key: seal(_enc(c), values[c.key], None, self.place_table, self.subject(c, assigned))
                    for c in todo
                },
            }
        if self.pins is None and len(moved) < len(table.primary_key.columns):
            raise QueryNotSupportedError(
                f"{table.name}.{todo[0].name} is bound to its row, but this UPDATE does not name one "
                "row by its whole primary key (WHERE pk = ...), so the row each value lands in is "
                "unknown; update by primary key (session.execute(update(Model), [{pk..., col...}]) "
                "or bulk_update_mappings) or load and change the objects"
            )
        pinned = dict(zip([c.key for c in table.primary_key.columns], self.pins or [], strict=False))
        parts = [
            assigned[c.key]
            if c.key in assigned
            else params.get(pinned[c.key].key, pinned[c.key].effective_value)
            for c in table.primary_key.columns
        ]
        row = row_key(table, parts, next(c for c in todo if _enc(c).bind_row).name)
        return {
            **values,
            **{
                c.key: seal(_enc(c), values[c.key], row, self.place_table, self.subject(c, assigned))
                for c in todo
            },
        }

    def subject(self, column: Column[Any], known: Mapping[str, Any]) -> Any:
        """The subject the UPDATE writes ``column`` for: set by it (``known``: its parameters and
        ``.values()``) or pinned by its WHERE; None for a column that is not per subject.

        Raises:
            QueryNotSupportedError: a per-subject column set without saying whose rows it writes.
        """
        type_ = _enc(column)
        if type_.subject is None:
            return None
        key = subject_column(self.table, type_).key
        if known.get(key) is not None:
            return known[key]
        pin = self.where.get(key)
        if pin is not None:
            return known.get(pin.key, pin.effective_value)
        raise QueryNotSupportedError(
            f"{self.table.name}.{column.name} is encrypted per subject (by {type_.subject}), but this "
            f"UPDATE does not say whose rows it writes; add .where({type_.subject} == ...) or include "
            f"{type_.subject} in each parameter set"
        )


def _pinned_primary_key(statement: Update) -> list[BindParameter[Any]] | None:
    """The parameters an UPDATE's WHERE sets each primary-key column equal to, in key order."""
    pins = _where_pins(statement)
    keys = [c.key for c in statement.table.primary_key.columns]  # type: ignore[attr-defined]
    if not keys or any(k not in pins for k in keys):
        return None
    return [pins[k] for k in keys]


def _where_pins(statement: Update) -> dict[str, BindParameter[Any]]:
    """The parameters an UPDATE's WHERE sets columns of its table equal to (top-level AND terms)."""
    table: Any = statement.table
    where = statement.whereclause
    if where is None:
        return {}
    terms = (
        list(where.clauses)
        if isinstance(where, BooleanClauseList) and where.operator is operators.and_
        else [where]
    )
    pins: dict[str, BindParameter[Any]] = {}
    for term in terms:
        if not isinstance(term, BinaryExpression) or term.operator is not operators.eq:
            continue
        left, right = term.left, term.right
        if isinstance(left, BindParameter):
            left, right = right, left
        if (
            isinstance(left, Column)
            and isinstance(right, BindParameter)
            and left.table.fullname == table.fullname
        ):
            pins[left.key] = right
    return pins


def install_mapper_hooks(mapper: Mapper[Any]) -> None:
    """Seal on flush and open on load for a mapper with row-bound or per-subject columns
    (mapper_configured)."""
    sealed_columns = row_bound_columns(mapper.local_table)
    props = [
        (prop.key, col)
        for prop in mapper.column_attrs
        for col in prop.columns
        if isinstance(col, Column) and col in sealed_columns
    ]
    if not props:
        return
    bind_row = any(_enc(col).bind_row for _, col in props)
    # Per-subject columns: the attribute holding each one's subject, and its column (for defaults).
    subject_of: dict[str, str] = {}
    subject_columns: dict[str, Column[Any]] = {}
    for key, col in props:
        if _enc(col).subject is not None:
            found = subject_column(mapper.local_table, _enc(col))
            subject_of[key] = mapper.get_property_by_column(found).key
            subject_columns[subject_of[key]] = found
    pk_keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
    pk_columns = [c for c in mapper.primary_key if isinstance(c, Column)]
    pk_types = [c.type for c in pk_columns]
    described = f"{getattr(mapper.local_table, 'name', '?')}.{props[0][1].name}"
    # One reader per column and table it is read from (a schema_translate_map moves the table).
    readers: dict[tuple[str, str], Callable[[bytes, RowKey], Any]] = {}

    def before_write(_mapper: Any, conn: Any, target: Any, *, insert: bool) -> None:
        state = inspect(target)
        translation = conn.get_execution_options().get(translate.TRANSLATE)
        if translation:
            translate.refuse_unfollowable(mapper.local_table, translation)  # before sealing anything
        place_table = translate.effective_name(mapper.local_table, translation)
        pk_changed = bind_row and not insert and any(state.attrs[k].history.has_changes() for k in pk_keys)
        if insert:
            defaults = [
                *(zip(pk_keys, pk_columns, strict=True) if bind_row else ()),
                *subject_columns.items(),
            ]
            for key, column in defaults:
                if getattr(target, key) is None and (value := python_default(column)) is not None:
                    setattr(target, key, value)  # column attribute changes go into this INSERT
        row = (
            row_key(mapper.local_table, [getattr(target, k) for k in pk_keys], props[0][1].name)
            if bind_row
            else None
        )
        if row is not None and (insert or pk_changed):
            # The key is written as bound: what the database stores is then what it returns.
            parts = row if isinstance(row, tuple) else (row,)
            for key, part in zip(pk_keys, parts, strict=True):
                given = getattr(target, key)
                if type(given) is not type(part) or given != part:
                    setattr(target, key, part)
        moved = {s for s in subject_columns if not insert and state.attrs[s].history.has_changes()}
        stash: dict[str, Any] = {}
        for key, col in props:
            type_ = _enc(col)
            # A new key or subject re-seals the value (it was sealed for the old ones).
            rebind = (type_.bind_row and pk_changed) or subject_of.get(key) in moved
            if not (insert or rebind or state.attrs[key].history.has_changes()):
                continue
            value = getattr(target, key)
            if rebind:
                # Every row-bound column goes into the UPDATE that moves the key (a NULL too):
                # Core refuses a key change that leaves one behind, bound to the old key. A
                # per-subject column moved to another subject likewise.
                flag_modified(target, key)
            if value is None or type(value) is Sealed:
                continue
            stash[key] = value
            subject = getattr(target, subject_of[key]) if key in subject_of else None
            state.dict[key] = seal(type_, value, row, place_table, subject)
        if stash:
            state.info[_STASH] = stash

    def after_write(_mapper: Any, _conn: Any, target: Any) -> None:
        # The instance keeps its plaintext; only the flushed parameters carried ciphertext.
        for key, value in inspect(target).info.pop(_STASH, {}).items():
            set_committed_value(target, key, value)

    def on_load(target: Any, context: Any, *_: Any) -> None:
        state = inspect(target)
        if state.identity is None:
            return
        row = canonical_key(pk_types, state.identity, described) if bind_row else None
        table = translate.effective_name(mapper.local_table, translate.loaded_translation(context))
        for key, col in props:
            value = state.dict.get(key)
            if type(value) is not Sealed:
                continue
            if key in subject_of:
                if subject_of[key] not in state.dict:
                    raise ConfigurationError(
                        f"{described.split('.')[0]}.{col.name} is encrypted per subject: load "
                        f"{_enc(col).subject} with it (it is deferred or left out of this query)"
                    )
                subject = state.dict[subject_of[key]]
                set_committed_value(target, key, open_sealed(_enc(col), value, row, table, subject))
                continue
            if row is None:  # not row-bound (cannot happen outside subject columns): the long way
                set_committed_value(target, key, open_sealed(_enc(col), value, row, table))
                continue
            read = readers.get((key, table))  # row-bound, one key for the column: resolved once
            if read is None:
                if len(readers) >= 256:
                    readers.clear()
                read = readers[(key, table)] = sealed_reader(_enc(col), table)
            set_committed_value(target, key, read(value.blob, row))

    event.listen(mapper, "before_insert", lambda m, c, t: before_write(m, c, t, insert=True))
    event.listen(mapper, "before_update", lambda m, c, t: before_write(m, c, t, insert=False))
    event.listen(mapper, "after_insert", after_write)
    event.listen(mapper, "after_update", after_write)
    event.listen(mapper, "load", on_load)
    event.listen(mapper, "refresh", on_load)


def _enc(column: Column[Any]) -> Encrypted[Any]:
    type_ = column.type
    assert isinstance(type_, Encrypted)
    return type_
