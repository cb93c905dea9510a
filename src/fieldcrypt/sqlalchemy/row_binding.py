"""Row binding: a ciphertext also bound to its row's primary key (``Encrypted(..., bind_row=True)``),
or encrypted under its row's tenant's keyring (``Encrypted(..., tenant="tenant_id")``) or its
row's subject's own key (``Encrypted(..., subject="user_id")``).

A bind processor sees a value, never its row, so such values are sealed before they reach
it, where the row is known: in mapper ``before_insert`` / ``before_update`` hooks for the ORM and
in a ``before_execute`` hook for Core inserts given as parameter dictionaries (executemany,
``bulk_insert_mappings``). Reads come back as :class:`Sealed` from the result processor and the
ORM opens them on ``load`` / ``refresh`` with the instance's identity, tenant and subject. The
primary key (and the tenant, and the subject) must be known before the write: a database-assigned
key (autoincrement), or a row or UPDATE that does not name its tenant or subject, is a clear
error, never a silent downgrade to table/column binding or to another key.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
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
from fieldcrypt.following import Following
from fieldcrypt.keyring import Keyring
from fieldcrypt.place import Place, RowKey
from fieldcrypt.reading import row_reader
from fieldcrypt.sqlalchemy import _compat, blind_index, translate, unique
from fieldcrypt.sqlalchemy.types import Encrypted, Sealed
from fieldcrypt.storage.row_keys import canonical_key

_STASH = "fieldcrypt_row_bound_plaintext"


# The options naming a column of the row that chooses the key: the tenant chooses the keyring,
# the subject the subject's own key inside it. Both must be known before the write.
CHOOSERS = ("tenant", "subject")


def sealed_columns(table: Any) -> list[Column[Any]]:
    """The columns whose values are sealed before the write: row-bound, per tenant or per subject."""
    return [c for c in table.columns if isinstance(c.type, Encrypted) and c.type.sealed_before_write]


def choosers(table: Any, type_: Encrypted[Any]) -> dict[str, Column[Any]]:
    """The columns of ``table`` naming the tenant and subject of ``type_``'s values, by option.

    Raises:
        ConfigurationError: no such column, or it is itself encrypted (it must be readable to
            choose the key that reads the rest).
    """
    found_by: dict[str, Column[Any]] = {}
    for option in CHOOSERS:
        name = getattr(type_, option)
        if name is None:
            continue
        found: Column[Any] | None = next((c for c in table.columns if c.name == name), None)
        if found is None or isinstance(found.type, Encrypted):
            where = ".".join(type_._where())
            raise ConfigurationError(
                f"{where} is per {option}, by column {name!r}, which "
                + (
                    f"is encrypted: the {option} column must be plaintext"
                    if found is not None
                    else "the table lacks"
                )
            )
        found_by[option] = found
    return found_by


def tenant_column(table: Any, type_: Encrypted[Any]) -> Column[Any]:
    """The column naming the tenant of ``type_``'s values (its ``tenant`` option) in ``table``."""
    return choosers(table, type_)["tenant"]


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
    type_: Encrypted[Any],
    value: Any,
    row: RowKey | None,
    table: str | None = None,
    *,
    tenant: Any = None,
    subject: Any = None,
) -> Sealed:
    """Encrypt ``value`` for its column, row (row-bound columns), the keyring of ``tenant``
    (per-tenant columns) and the key of ``subject`` (per-subject columns); carries the blind-index
    token when searchable. ``table``: the place's table where a ``schema_translate_map`` moves the
    declared one."""
    return sealer(type_, table)(value, row, tenant, subject)


def sealer(
    type_: Encrypted[Any], table: str | None = None
) -> Callable[[Any, RowKey | None, Any, Any], Sealed]:
    """``seal(type_, value, row, table, tenant=, subject=)`` for one column, as
    ``seal_value(value, row, tenant, subject)``: resolved once per column (kept per type, for
    the writes of every path), the keyring once, or per tenant through the held tenant keyrings
    (:mod:`fieldcrypt.following`), the token through the column's indexer."""
    found = _sealers.get(id(type_))
    # A copy of the type (``bound_to``) has another id; the identity checks catch an instance
    # whose options were set after its sealers were made.
    if found is None or found[0] is not type_.place or found[1] is not type_.keyring:
        if found is None:
            weakref.finalize(type_, _sealers.pop, id(type_), None)
        found = _sealers[id(type_)] = (type_.place, type_.keyring, {})
    by_table = found[2]
    made = by_table.get(table)
    if made is None:
        if len(by_table) >= 256:
            by_table.clear()
        made = by_table[table] = _make_sealer(type_, table)
    return made


# Per Encrypted type (by id, removed when the type is collected, so an id is never reused while
# present): its place and keyring name when made, and its sealers by table.
_sealers: dict[
    int, tuple[object, object, dict[str | None, Callable[[Any, RowKey | None, Any, Any], Sealed]]]
] = {}


def _make_sealer(
    type_: Encrypted[Any], table: str | None
) -> Callable[[Any, RowKey | None, Any, Any], Sealed]:
    encode = type_.sealing_encoder()
    own = type_.places(None, table)[0]
    where = "{}.{}".format(*type_._where())
    per_tenant, per_subject = type_.tenant is not None, type_.subject is not None
    # The same per-keyring resolution as the column's reader and indexer; a write keeps no state
    # of its own per tenant beyond the held keyring (the keyring's current data key).
    following: Following[Keyring | None] = Following(type_.keyring, None, per_tenant=per_tenant)
    one, family_box = following.one, following.family
    tokenize = blind_index.tokenizer(type_) if type_.searchable else None
    older = type_.unique

    def seal_value(value: Any, row: RowKey | None, tenant: Any = None, subject: Any = None) -> Sealed:
        try:
            plain = encode(value)
        except TypeError as exc:
            raise TypeError(f"{where}: {exc}") from None
        if per_tenant:
            if tenant is None:
                type_.row_keyring(tenant)  # raises: the row does not name its tenant
            family = family_box[0][0] or following.resolve_family()[0]
            keyring = family.held_for(tenant)[0]
        else:
            keyring = one[0] or _resolve_keyring(following)
        place = own if row is None else Place(own.table, own.column, row)
        if per_subject:
            blob = keyring.encrypt_for_subject(_known_subject(type_, subject), plain, place)
        else:
            blob = keyring.encrypt(plain, place)
        if tokenize is None:
            return Sealed(blob)
        return Sealed(
            blob, tokenize(value, tenant), unique.older_tokens(type_, value, tenant) if older else ()
        )

    return seal_value


def _resolve_keyring(following: Following[Keyring | None]) -> Keyring:
    keyring, seen = following.resolve_keyring()
    following.keep(keyring, seen, None, None)
    return keyring


def open_sealed(
    type_: Encrypted[Any],
    sealed: Sealed,
    row: RowKey | None,
    table: str | None = None,
    *,
    tenant: Any = None,
    subject: Any = None,
) -> Any:
    """Decrypt a value read from ``row`` (of ``table``, where a ``schema_translate_map`` moved the
    declared one) of ``tenant`` and ``subject``. Raises DecryptionError naming the row."""
    places = type_.places(row, table)
    keyring = type_.row_keyring(tenant)
    if type_.subject is not None:
        known = _known_subject(type_, subject)
        first: Exception | None = None
        for place in places:  # a renamed column: its own place, then its old one (as open_at)
            try:
                return type_.codec.decode(keyring.decrypt_for_subject(known, sealed.blob, place), places[0])
            except DecryptionError as exc:
                first = first or exc
        assert first is not None
        raise first
    if len(places) == 1:  # runs per value read: no loop over old places when there are none
        return type_.codec.decode(keyring.decrypt(sealed.blob, places[0]), places[0])
    return type_.codec.decode(open_at(keyring, sealed.blob, places), places[0])


def _known_subject(type_: Encrypted[Any], subject: Any) -> Any:
    if subject is None:
        table, column = type_._where()
        raise ConfigurationError(
            f"{table}.{column} is encrypted per subject, by {type_.subject}, which this row does not "
            "give (None, or not set before the write / not loaded with it)"
        )
    return subject


def sealed_reader(type_: Encrypted[Any], table: str | None = None) -> Callable[..., Any]:
    """``open_sealed`` for one column's values (read from ``table``, as ``open_sealed``),
    ``read(sealed.blob, row, tenant=None)``, resolved once, and per tenant keyring for a
    per-tenant column (:func:`fieldcrypt.reading.row_reader`); ``row`` is None unless the column
    is row-bound. A renamed column (``bound_as``) tries both places through ``open_sealed``; a
    per-subject column (its own key per subject, no reader of its own) opens there too."""
    if type_.bound_as is not None or type_.subject is not None:
        return lambda blob, row, tenant=None, subject=None: open_sealed(
            type_, Sealed(blob), row, table, tenant=tenant, subject=subject
        )
    return row_reader(
        type_.keyring,
        type_.places(None, table)[0],
        type_.codec,
        row_bound=type_.bind_row,
        per_tenant=type_.tenant is not None,
    )


def seal_insert_params(
    statement: Insert,
    multiparams: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    translation: translate.Translation | None = None,
) -> tuple[Sequence[Mapping[str, Any]], Mapping[str, Any]]:
    """Seal row-bound, per-tenant and per-subject values of a Core INSERT given as parameter dictionaries, to
    the table the statement reaches (``translation``: its ``schema_translate_map``)."""
    columns = sealed_columns(statement.table)
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
    chosen = {c.key: choosers(table, _enc(c)) for c in todo}
    needed = [
        *(table.primary_key.columns if bound else ()),
        *(c for by in chosen.values() for c in by.values()),
    ]
    missing = {c.key: python_default(c) for c in needed if params.get(c.key) is None}
    params = {**params, **{k: v for k, v in missing.items() if v is not None}}
    row = row_key(table, params, bound[0].name) if bound else None
    return {
        **params,
        **{
            c.key: seal(
                _enc(c),
                params[c.key],
                row if _enc(c).bind_row else None,
                place_table,
                **{option: params.get(found.key) for option, found in chosen[c.key].items()},
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
    """Seal row-bound and per-tenant values of an UPDATE that names their rows.

    A row-bound value needs a WHERE naming one row by its whole primary key: the shape of ORM
    ``bulk_update_mappings``, ORM bulk UPDATE by primary key (``session.execute(update(Model),
    [...])``) and ``update(t).where(t.c.id == ...)``; it is sealed to that row, or to the new key
    when the UPDATE also changes the primary key. A per-tenant value needs its tenant: set by the
    same UPDATE (the parameter set or ``.values()``) or pinned by the WHERE (``t.c.tenant_id ==
    ...``). Each parameter set (or the statement's own ``.values()``) is sealed that way, in the
    table the statement reaches (``translation``: its ``schema_translate_map``).

    Raises:
        QueryNotSupportedError: a row-bound column set by an UPDATE that does not name its row by
            primary key, or the primary key changed while a row-bound column keeps its value
            (bound to the old key); a per-tenant column set without its tenant, or a tenant column
            changed without its per-tenant columns (their values would stay under the old
            tenant's keys).
    """
    columns = sealed_columns(statement.table)
    if not columns:
        return statement, multiparams, params
    pins = _pins(statement)
    inline = {
        target if isinstance(target, str) else target.key for target in _compat.update_targets(statement)
    }
    table: Any = statement.table
    keys = {c.key for c in table.primary_key.columns}
    sealed = {c.key for c in columns}
    chosen = {found.key for c in columns for found in choosers(table, _enc(c)).values()}
    watched = inline & (keys | sealed | chosen)
    compiled = statement.compile(dialect=conn.dialect).params if watched else {}
    set_inline = {k: compiled.get(k) for k in watched}
    place_table = translate.effective_name(table, translation)
    for given in [*(multiparams or ([params] if params else [])), set_inline]:
        _refuse_chooser_move(statement, columns, {**set_inline, **given})
    if multiparams:
        multiparams = [
            _seal_set(statement, place_table, columns, pins, p, p, set_inline) for p in multiparams
        ]
    elif params:
        params = _seal_set(statement, place_table, columns, pins, params, params, set_inline)
    elif inline & keys:
        _seal_set(statement, place_table, columns, pins, {}, {}, set_inline)  # refuses a key change alone
    if inline & sealed:
        given = {k: v for k, v in set_inline.items() if k in sealed}
        sealed_values = _seal_set(statement, place_table, columns, pins, given, params, set_inline)
        changed = {k: v for k, v in sealed_values.items() if v is not given[k]}
        if changed:
            statement = statement.values(changed)
    return statement, multiparams, params


def _refuse_chooser_move(statement: Update, columns: list[Column[Any]], given: Mapping[str, Any]) -> None:
    table: Any = statement.table
    for column in columns:
        if column.key in given:
            continue
        for option, found in choosers(table, _enc(column)).items():
            if found.key in given:
                raise QueryNotSupportedError(
                    f"{table.name}.{column.name} is per {option} (by {found.name}): a statement changing "
                    f"{found.name} must also write {column.name} (its values are under the old {option}'s "
                    "keys and would no longer read); give both, or load and change the objects"
                )


def _seal_set(
    statement: Update,
    place_table: str,
    columns: list[Column[Any]],
    pins: Mapping[str, BindParameter[Any]],
    values: Mapping[str, Any],
    params: Mapping[str, Any],
    inline: Mapping[str, Any],
) -> Mapping[str, Any]:
    """``values`` with each plaintext of a row-bound column sealed to the row ``pins`` name (or to
    the new key, when ``params`` or the statement's ``inline`` values assign one), and of a
    per-tenant column under the tenant they assign or ``pins`` name."""
    table: Any = statement.table
    assigned = {**inline, **{k: v for k, v in params.items() if k in table.c}}
    bound = [c for c in columns if _enc(c).bind_row]
    moved = [c for c in table.primary_key.columns if c.key in assigned]
    if moved and bound:
        kept = [c for c in bound if c.key not in assigned]
        if kept:
            raise QueryNotSupportedError(
                f"{table.name}.{kept[0].name} is bound to its row's primary key, and this statement "
                f"moves the row to a new {table.name}.{moved[0].name} without writing it: its value would no "
                "longer decrypt; change the key through the ORM (which re-encrypts the row's "
                "values) or set every row-bound column in the same UPDATE"
            )
    todo = [c for c in columns if values.get(c.key) is not None and type(values[c.key]) is not Sealed]
    if not todo:
        return values
    row: RowKey | None = None
    todo_bound = [c for c in todo if _enc(c).bind_row]
    if todo_bound:
        keys = [c.key for c in table.primary_key.columns]
        if not keys or any(k not in assigned and k not in pins for k in keys):
            raise QueryNotSupportedError(
                f"{table.name}.{todo_bound[0].name} is bound to its row, but this UPDATE does not name one row "
                "by its whole primary key (WHERE pk = ...), so the row each value lands in is unknown; "
                "update by primary key (session.execute(update(Model), [{pk..., col...}]) or "
                "bulk_update_mappings) or load and change the objects"
            )
        parts = [assigned[k] if k in assigned else _pinned(pins[k], params) for k in keys]
        row = row_key(table, parts, todo_bound[0].name)
    sealed: dict[str, Any] = {}
    for column in todo:
        type_ = _enc(column)
        chosen: dict[str, Any] = {}
        for option, found in choosers(table, type_).items():
            if found.key in assigned:
                chosen[option] = assigned[found.key]
            elif found.key in pins:
                chosen[option] = _pinned(pins[found.key], params)
            else:
                raise QueryNotSupportedError(
                    f"{table.name}.{column.name} is per {option} (by {found.name}), but this UPDATE does "
                    f"not say which {option}'s rows it writes; add .where({found.name} == ...) or "
                    f"include {found.name} in each parameter set"
                )
        sealed[column.key] = seal(
            type_, values[column.key], row if type_.bind_row else None, place_table, **chosen
        )
    return {**values, **sealed}


def _pinned(pin: BindParameter[Any], known: Mapping[str, Any]) -> Any:
    return known.get(pin.key, pin.effective_value)


def _pins(statement: Update) -> dict[str, BindParameter[Any]]:
    """The parameters an UPDATE's WHERE sets columns of its table equal to, by column key."""
    table: Any = statement.table
    return {
        left.key: right
        for left, right in equalities(statement.whereclause)
        if isinstance(left, Column) and left.table.fullname == table.fullname
    }


def equalities(where: Any) -> list[tuple[Any, BindParameter[Any]]]:
    """(expression, parameter) of each top-level ``AND`` term ``expression == parameter`` of a
    WHERE clause: what it pins whatever else it says."""
    found: list[tuple[Any, BindParameter[Any]]] = []
    for term in and_terms(where):
        if not isinstance(term, BinaryExpression) or term.operator is not operators.eq:
            continue
        left, right = term.left, term.right
        if isinstance(left, BindParameter):
            left, right = right, left
        if isinstance(right, BindParameter):
            found.append((left, right))
    return found


def and_terms(where: Any) -> list[Any]:
    """The terms of a WHERE clause's top-level ``AND`` (nested ``AND`` flattened)."""
    if where is None:
        return []
    if isinstance(where, BooleanClauseList) and where.operator is operators.and_:
        return [term for clause in where.clauses for term in and_terms(clause)]
    return [where]


def install_mapper_hooks(mapper: Mapper[Any]) -> None:
    """Seal on flush and open on load for a mapper with row-bound, per-tenant or per-subject
    columns (mapper_configured)."""
    table: Any = mapper.local_table
    sealed = sealed_columns(table)
    props = [
        (prop.key, col)
        for prop in mapper.column_attrs
        for col in prop.columns
        if isinstance(col, Column) and col in sealed
    ]
    if not props:
        return
    bind_row = any(_enc(col).bind_row for _, col in props)
    pk_keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
    pk_columns = [c for c in mapper.primary_key if isinstance(c, Column)]
    pk_types = [c.type for c in pk_columns]
    described = f"{getattr(table, 'name', '?')}.{props[0][1].name}"
    # Per-tenant and per-subject columns: the attributes holding each one's tenant and subject
    # (by option), and their columns (for defaults).
    chosen_by: dict[str, dict[str, str]] = {}
    chooser_columns: dict[str, Column[Any]] = {}
    for key, col in props:
        for option, found in choosers(table, _enc(col)).items():
            attr = mapper.get_property_by_column(found).key
            chosen_by.setdefault(key, {})[option] = attr
            chooser_columns[attr] = found

    def before_write(_mapper: Any, conn: Any, target: Any, *, insert: bool) -> None:
        state = inspect(target)
        translation = conn.get_execution_options().get(translate.TRANSLATE)
        if translation:
            translate.refuse_unfollowable(table, translation)  # before sealing anything
        place_table = translate.effective_name(table, translation)
        pk_changed = bind_row and not insert and any(state.attrs[k].history.has_changes() for k in pk_keys)
        if insert:
            defaults = [
                *(zip(pk_keys, pk_columns, strict=True) if bind_row else ()),
                *chooser_columns.items(),
            ]
            for key, column in defaults:
                if getattr(target, key) is None and (value := python_default(column)) is not None:
                    setattr(target, key, value)  # column attribute changes go into this INSERT
        row = row_key(table, [getattr(target, k) for k in pk_keys], props[0][1].name) if bind_row else None
        if row is not None and (insert or pk_changed):
            # The key is written as bound: what the database stores is then what it returns.
            parts = row if isinstance(row, tuple) else (row,)
            for key, part in zip(pk_keys, parts, strict=True):
                given = getattr(target, key)
                if type(given) is not type(part) or given != part:
                    setattr(target, key, part)
        moved = {a for a in chooser_columns if not insert and state.attrs[a].history.has_changes()}
        stash: dict[str, Any] = {}
        for key, col in props:
            type_ = _enc(col)
            # A new key, tenant or subject re-seals the value (it was bound to the old ones).
            by = chosen_by.get(key, {})
            rebind = (type_.bind_row and pk_changed) or any(a in moved for a in by.values())
            if not (insert or rebind or state.attrs[key].history.has_changes()):
                continue
            value = getattr(target, key)
            if rebind:
                # Every column re-sealed goes into the UPDATE that moves the key, tenant or subject
                # (a NULL too): Core refuses a move that leaves one behind, under the old one.
                flag_modified(target, key)
            if value is None or type(value) is Sealed:
                continue
            stash[key] = value
            chosen = {option: getattr(target, a) for option, a in by.items()}
            state.dict[key] = seal(type_, value, row if type_.bind_row else None, place_table, **chosen)
        if stash:
            state.info[_STASH] = stash

    def after_write(_mapper: Any, _conn: Any, target: Any) -> None:
        # The instance keeps its plaintext; only the flushed parameters carried ciphertext.
        for key, value in inspect(target).info.pop(_STASH, {}).items():
            set_committed_value(target, key, value)

    # One reader per column and table it is read from (a schema_translate_map moves the table).
    readers: dict[tuple[str, str], Callable[..., Any]] = {}

    def on_load(target: Any, context: Any, *_: Any) -> None:
        state = inspect(target)
        if state.identity is None:
            return
        row = canonical_key(pk_types, state.identity, described) if bind_row else None
        loaded_table = translate.effective_name(table, translate.loaded_translation(context))
        for key, col in props:
            value = state.dict.get(key)
            if type(value) is not Sealed:
                continue
            chosen: dict[str, Any] = {}
            for option, attr in chosen_by.get(key, {}).items():
                if attr not in state.dict:
                    raise ConfigurationError(
                        f"{getattr(table, 'name', '?')}.{col.name} is per {option}: load {attr} with it "
                        "(it is deferred or left out of this query), or its value cannot be opened"
                    )
                chosen[option] = state.dict[attr]
            type_ = _enc(col)
            tenant = chosen.get("tenant")
            if "subject" in chosen or (tenant is None and type_.tenant is not None):
                # Per subject (its own key per subject), or no tenant to open with (raises): the
                # long way.
                opened = open_sealed(type_, value, row if type_.bind_row else None, loaded_table, **chosen)
            else:
                read = readers.get((key, loaded_table))  # resolved once, per tenant keyring if per tenant
                if read is None:
                    if len(readers) >= 256:
                        readers.clear()
                    read = readers[(key, loaded_table)] = sealed_reader(type_, loaded_table)
                opened = read(value.blob, row if type_.bind_row else None, tenant)
            set_committed_value(target, key, opened)

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
