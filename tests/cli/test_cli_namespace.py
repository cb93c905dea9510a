"""A keyring namespace (database or tenant id) in every place: two databases with the same table
names under one keyring cannot read each other's values; ORM, Core, the Alembic operation, the CLI
and the rotation engine all bind to it, from one declaration on the keyring."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from cli_helpers import payload
from click.testing import Result
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import DecryptionError, Place
from fieldcrypt.sqlalchemy import Encrypted
from fieldcrypt.testing import local_keyring


class NamespaceBase(DeclarativeBase):
    pass


class Customer(NamespaceBase):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(Encrypted(sa.String(11), keyring="pii", bind_row=True))


plain = sa.Table(
    "plain_users",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ssn", sa.String(11)),
)


@pytest.fixture
def engine(sqlite_engine: sa.Engine) -> sa.Engine:
    """Database "db-a" (SQLite: the place is computed by the keyring, whatever the database)."""
    return sqlite_engine


@pytest.fixture
def other_db(tmp_path: Path) -> Iterator[sa.Engine]:
    """Database "db-b": the same tables, another database, the same keyring's keys."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    yield engine
    engine.dispose()


def _with_namespace(keyring: fieldcrypt.Keyring, namespace: str | None) -> fieldcrypt.Keyring:
    """The same keys (master key and key store) under another namespace, registered as "pii"."""
    again = fieldcrypt.Keyring("pii", keyring.master_key, keyring.key_store, namespace=namespace)
    return fieldcrypt.register(again, replace=True)


def _raw(engine: sa.Engine, table: str = "users") -> dict[int, bytes]:
    with engine.connect() as conn:
        return {i: bytes(v) for i, v in conn.execute(sa.text(f"select id, ssn from {table}"))}


def test_namespace_binds_orm_core_cli_engine_and_alembic(
    engine: sa.Engine, other_db: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """Written under namespace db-a: read by Core, the CLI (verify, reencrypt) and the model; a copy into db-b fails."""
    db_a = _with_namespace(keyring, "db-a")
    NamespaceBase.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Customer(id=1, ssn="111-11-1111"))
        session.commit()
    stored = _raw(engine)[1]
    assert b"111-11-1111" not in stored
    # The format: the namespace, a NUL and the table name in the table field of the place.
    bare = _with_namespace(keyring, None)
    assert bare.decrypt(stored, Place("db-a\x00users", "ssn", 1)) == b"111-11-1111"
    with pytest.raises(DecryptionError):  # 0.1's place (no namespace) does not open it
        bare.decrypt(stored, Place("users", "ssn", 1))

    # The CLI, given the namespace, verifies and re-encrypts (the rotation engine); without it, fails.
    assert run("--namespace", "db-a", "verify", "users.ssn", "--codec", "text", "--bind-row").exit_code == 0
    assert run("verify", "users.ssn", "--codec", "text", "--bind-row").exit_code == 1
    db_a.rotate()
    moved = run("--namespace", "db-a", "reencrypt", "users.ssn", "--bind-row", json_output=True)
    assert (moved.exit_code, payload(moved)["written"]) == (0, 1)
    assert _raw(engine)[1] != stored

    # The Alembic operation adopts a plaintext column under the registered keyring's namespace.
    db_a = _with_namespace(keyring, "db-a")
    plain.create(engine)
    with engine.begin() as conn:
        conn.execute(plain.insert(), [{"id": 7, "ssn": "777-77-7777"}])
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            Operations(context).encrypt_column(
                "plain_users", "ssn", type_=Encrypted(sa.String(11), keyring="pii")
            )
    assert db_a.decrypt(_raw(engine, "plain_users")[7], Place("plain_users", "ssn")) == b"777-77-7777"
    with pytest.raises(DecryptionError):
        bare.decrypt(_raw(engine, "plain_users")[7], Place("plain_users", "ssn"))

    # Core and the ORM read it back under db-a ...
    db_a = _with_namespace(keyring, "db-a")
    with engine.connect() as conn:
        assert conn.execute(sa.select(Customer.__table__.c.ssn)).scalar_one().blob  # row-bound: Sealed
    with Session(engine) as session:
        assert session.get(Customer, 1).ssn == "111-11-1111"  # type: ignore[union-attr]
    # ... but the same row copied into database db-b, same table, same id, does not decrypt there.
    NamespaceBase.metadata.create_all(other_db)
    with other_db.begin() as conn:
        conn.execute(sa.text("insert into users (id, ssn) values (1, :v)"), {"v": _raw(engine)[1]})
    _with_namespace(keyring, "db-b")
    with Session(other_db) as session, pytest.raises(DecryptionError, match=r"users\.ssn \(row 1\)"):
        session.get(Customer, 1)


def test_namespace_is_validated() -> None:
    """An empty namespace, or one holding a NUL (the separator), is refused when the keyring is made."""
    for bad in ("", "a\x00b"):
        with pytest.raises(fieldcrypt.ConfigurationError, match="namespace must be"):
            local_keyring("pii", namespace=bad, register_it=False)
