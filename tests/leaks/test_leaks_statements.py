"""Failed statements that bind encrypted columns quote no plaintext (message, args, params,
chained errors, logs), on SQLite, PostgreSQL and MariaDB, through the ORM and Core alike."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from leak_models import NOTE, PLAINTEXTS, SSN, Base, Orphan, Person, RefusingMasterKey
from leak_scanner import Capture, Secrets
from sqlalchemy.orm import Session

import fieldcrypt
from fieldcrypt.errors import ConfigurationError, FieldcryptError, KeyAccessError
from fieldcrypt.sqlalchemy.redaction import NOTE as HIDDEN_NOTE


@pytest.fixture
def db(engine: sa.Engine) -> Iterator[sa.Engine]:
    """The leak tables on each database."""
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)


def _row(pk: int = 1, **overrides: Any) -> dict[str, Any]:
    return {
        "id": pk,
        "name": f"person {pk}",
        "born": dt.date(1980, 1, 2),
        "ssn": SSN,
        "note": NOTE,
    } | overrides


def _refusing_keyring() -> fieldcrypt.Keyring:
    return fieldcrypt.register(
        fieldcrypt.Keyring("pii", RefusingMasterKey(), fieldcrypt.MemoryKeyStore()), replace=True
    )


def _failure(action: Callable[[], Any]) -> BaseException:
    with pytest.raises(sa.exc.StatementError) as caught:
        action()
    return caught.value


def _orm_insert(db: sa.Engine, **row: Any) -> Callable[[], None]:
    def run() -> None:
        with Session(db) as session:
            session.add(Person(**_row(**row)))
            session.commit()

    return run


def _core_insert_many(db: sa.Engine) -> Callable[[], None]:
    def run() -> None:
        with db.begin() as conn:
            conn.execute(sa.insert(Person.__table__), [_row(1), _row(2, ssn="987-65-4321")])

    return run


def _core_update(db: sa.Engine) -> Callable[[], None]:
    def run() -> None:
        with db.begin() as conn:
            conn.execute(sa.update(Person.__table__).where(Person.__table__.c.id == 1).values(note=NOTE))

    return run


def _scan(exc: BaseException, secrets: Secrets, logs: Capture) -> None:
    secrets.plaintext(*PLAINTEXTS).assert_exception_clean(exc)
    secrets.assert_records_clean(logs.records)


@pytest.mark.parametrize("write", [_orm_insert, _core_insert_many, _core_update])
def test_refused_master_key_leaves_no_plaintext_in_the_error(
    db: sa.Engine, write: Callable[[sa.Engine], Callable[[], None]], secrets: Secrets, debug_logs: Capture
) -> None:
    """KMS refusing Encrypt during an ORM flush, a Core executemany or an UPDATE: the error is clean."""
    _refusing_keyring()
    error = _failure(write(db))
    assert isinstance(error, sa.exc.StatementError)
    assert isinstance(error.orig, KeyAccessError)
    assert not error.params  # hidden (or, for .values(), never there)
    assert "AccessDeniedException" in str(error)  # what failed is still said
    _scan(error, secrets, debug_logs)


def test_unregistered_keyring_leaves_no_plaintext_in_the_error(
    db: sa.Engine, secrets: Secrets, debug_logs: Capture
) -> None:
    """A column naming a keyring nobody registered: ConfigurationError, no value quoted."""

    def write() -> None:
        with Session(db) as session:
            session.add(Orphan(id=1, secret=SSN))
            session.commit()

    error = _failure(write)
    assert isinstance(getattr(error, "orig", None), ConfigurationError)
    assert HIDDEN_NOTE in error.__notes__  # says why no parameters are shown
    _scan(error, secrets, debug_logs)


def test_wrong_type_in_another_column_leaves_no_plaintext(
    db: sa.Engine, master_key: fieldcrypt.LocalMasterKey, secrets: Secrets, debug_logs: Capture
) -> None:
    """A string given for the Date column of the same row: whatever fails, the SSN is not quoted."""
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore()))
    error = _failure(_orm_insert(db, born="not a date"))
    secrets.keyring(keyring)
    _scan(error, secrets, debug_logs)


def test_wrong_type_in_the_encrypted_column_names_types_only(
    db: sa.Engine, master_key: fieldcrypt.LocalMasterKey, secrets: Secrets, debug_logs: Capture
) -> None:
    """An int given for an encrypted string column: TypeError naming the column, no other value."""
    fieldcrypt.register(fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore()))
    error = _failure(_orm_insert(db, note=4711))
    assert isinstance(getattr(error, "orig", None), TypeError)
    assert "leak_people.note: expected str, got int" in str(error)
    _scan(error, secrets, debug_logs)


def test_data_key_of_another_master_key_leaves_no_plaintext(
    db: sa.Engine, master_key: fieldcrypt.LocalMasterKey, secrets: Secrets, debug_logs: Capture
) -> None:
    """The store's data key was made under another master key (wrong key configured): clean error."""
    store = fieldcrypt.MemoryKeyStore()
    other_bytes = bytes(range(101, 133))
    other = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey(other_bytes), store)
    other.warm_up()
    mine = fieldcrypt.register(fieldcrypt.Keyring("pii", master_key, store))
    error = _failure(_orm_insert(db))
    # Refused before any key is made under the wrong master key (or opened with it).
    assert isinstance(getattr(error, "orig", None), (KeyAccessError, fieldcrypt.ConfigurationError))
    secrets.keyring(other, other_bytes).keyring(mine)
    _scan(error, secrets, debug_logs)


def test_duplicate_after_encryption_quotes_only_ciphertext(
    db: sa.Engine, master_key: fieldcrypt.LocalMasterKey, secrets: Secrets, debug_logs: Capture
) -> None:
    """A duplicate blind index is refused by the database; the error quotes no plaintext or key."""
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore()))
    _orm_insert(db)()
    error = _failure(_orm_insert(db, pk=2))
    assert isinstance(error, sa.exc.IntegrityError)
    secrets.keyring(keyring)
    _scan(error, secrets, debug_logs)


def test_catching_the_fieldcrypt_error_through_orig(db: sa.Engine) -> None:
    """The documented way to catch a fieldcrypt error raised inside a statement: ``exc.orig``."""
    _refusing_keyring()
    caught: FieldcryptError | None = None
    try:
        _orm_insert(db)()
    except sa.exc.StatementError as exc:
        if not isinstance(exc.orig, FieldcryptError):
            raise
        caught = exc.orig
    assert isinstance(caught, KeyAccessError)
    assert caught.code == "AccessDeniedException"


def test_statements_without_encrypted_columns_keep_their_parameters(db: sa.Engine) -> None:
    """Only statements binding encrypted columns lose their parameters: others keep them for debugging."""
    _refusing_keyring()
    _failure(_orm_insert(db))  # the engine has built an Encrypted bind processor: the listener is on
    with pytest.raises(sa.exc.DBAPIError) as caught, db.begin() as conn:
        conn.execute(sa.insert(Person.__table__).values(id=1, name=None))
    assert caught.value.params
    assert not caught.value.hide_parameters


def test_async_flush_with_asyncpg_leaves_no_plaintext(
    pg_engine: sa.Engine, secrets: Secrets, debug_logs: Capture
) -> None:
    """AsyncSession on asyncpg: a refused master key during flush gives a clean error too."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    Base.metadata.create_all(pg_engine)
    _refusing_keyring()
    url = pg_engine.url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)

    async def flush() -> BaseException:
        engine = create_async_engine(url)
        try:
            async with AsyncSession(engine) as session:
                session.add(Person(**_row()))
                with pytest.raises(sa.exc.StatementError) as caught:
                    await session.commit()
                return caught.value
        finally:
            await engine.dispose()

    error = asyncio.run(flush())
    assert isinstance(getattr(error, "orig", None), KeyAccessError)
    _scan(error, secrets, debug_logs)
