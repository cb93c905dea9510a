"""The place includes the schema: ORM, Core, the Alembic operation and the rotation engine agree on
``schema.table`` for a non-default schema (a PostgreSQL schema, a MariaDB database)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqla_helpers import assert_ciphertext
from sqlalchemy import String, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import ConfigurationError, DecryptionError, Place
from fieldcrypt.rotation import ColumnSpec, reencrypt_column
from fieldcrypt.sqlalchemy import Encrypted

SCHEMA = f"{os.environ.get('FIELDCRYPT_TEST_DB', 'fieldcrypt_test')}_tenant"


class SchemaBase(DeclarativeBase):
    pass


class TenantUser(SchemaBase):
    __tablename__ = "tenant_users"
    __table_args__ = {"schema": SCHEMA}  # noqa: RUF012 - SQLAlchemy's declarative spelling
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(Encrypted(String(11), keyring="pii", searchable=True))


# The same table in the default schema: what another tenant's copy of the model looks like.
default_users = TenantUser.__table__.to_metadata(sa.MetaData(), schema=None)
plain_users = sa.Table(
    "tenant_plain",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ssn", sa.String(11)),
    schema=SCHEMA,
)
adopted_users = sa.Table(
    "tenant_plain",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ssn", Encrypted(sa.String(11), keyring="pii")),
    schema=SCHEMA,
)


@pytest.fixture(params=["postgresql", "mariadb"])
def schema_engine(
    request: pytest.FixtureRequest, keyring: fieldcrypt.Keyring, own_schemas: Callable[[sa.Engine, str], str]
) -> Iterator[sa.Engine]:
    """PostgreSQL with a second schema, MariaDB with a second database, both of this suite's own."""
    engine: sa.Engine = request.getfixturevalue(
        f"{'pg' if request.param == 'postgresql' else 'mariadb'}_engine"
    )
    own_schemas(engine, SCHEMA)
    SchemaBase.metadata.create_all(engine)
    default_users.create(engine)
    yield engine
    default_users.drop(engine)


def _raw(engine: sa.Engine, table: str) -> dict[int, Any]:
    with engine.connect() as conn:
        return dict(conn.exec_driver_sql(f"SELECT id, ssn FROM {table} ORDER BY id").all())


def test_orm_core_and_engine_bind_to_schema_dot_table(
    schema_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """ORM and Core write under Place("<schema>.tenant_users"); the rotation engine (as the CLI runs it) re-encrypts them; search works."""
    with Session(schema_engine) as session:
        session.add(TenantUser(id=1, ssn="111-11-1111"))
        session.commit()
    with schema_engine.begin() as conn:
        conn.execute(insert(TenantUser.__table__), [{"id": 2, "ssn": "222-22-2222"}])
    stored = _raw(schema_engine, f"{SCHEMA}.tenant_users")
    place = Place(f"{SCHEMA}.tenant_users", "ssn")
    assert keyring.decrypt(assert_ciphertext(stored[1], b"111-11-1111"), place) == b"111-11-1111"
    with pytest.raises(DecryptionError):
        keyring.decrypt(bytes(stored[1]), Place("tenant_users", "ssn"))
    keyring.rotate()
    spec = ColumnSpec(
        f"{SCHEMA}.tenant_users", "ssn", keyring="pii"
    )  # what `fieldcrypt reencrypt <schema>.tenant_users.ssn` builds
    assert reencrypt_column(schema_engine, spec).written == 2
    with Session(schema_engine) as session:
        assert session.scalars(select(TenantUser.id).where(TenantUser.ssn == "222-22-2222")).all() == [2]
        assert {u.id: u.ssn for u in session.scalars(select(TenantUser))} == {
            1: "111-11-1111",
            2: "222-22-2222",
        }


def test_alembic_encrypt_column_with_schema_is_read_by_the_model(schema_engine: sa.Engine) -> None:
    """op.encrypt_column("tenant_plain", "ssn", schema=S) writes what the schema-qualified model reads."""
    plain_users.create(schema_engine)
    with schema_engine.begin() as conn:
        conn.execute(insert(plain_users), [{"id": 1, "ssn": "123-45-6789"}])
    with schema_engine.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            Operations(context).encrypt_column(
                "tenant_plain", "ssn", type_=Encrypted(sa.String(11), keyring="pii"), schema=SCHEMA
            )
    assert_ciphertext(_raw(schema_engine, f"{SCHEMA}.tenant_plain")[1], b"123-45-6789")
    with schema_engine.connect() as conn:
        assert conn.execute(select(adopted_users.c.ssn)).scalar_one() == "123-45-6789"
    plain_users.drop(schema_engine)


def test_a_value_copied_to_another_schema_fails(schema_engine: sa.Engine) -> None:
    """Tenant A's row 1 copied into the same table and row of the default schema raises DecryptionError there."""
    with Session(schema_engine) as session:
        session.add(TenantUser(id=1, ssn="111-11-1111"))
        session.commit()
    with schema_engine.begin() as conn:
        blob = conn.exec_driver_sql(f"SELECT ssn FROM {SCHEMA}.tenant_users WHERE id = 1").scalar_one()
        conn.execute(sa.text("INSERT INTO tenant_users (id, ssn) VALUES (1, :b)"), {"b": blob})
    with (
        schema_engine.connect() as conn,
        pytest.raises(DecryptionError, match=r"cannot decrypt tenant_users\.ssn"),
    ):
        conn.execute(select(default_users.c.ssn)).all()


def test_schema_translate_map_over_encrypted_tables_is_refused(schema_engine: sa.Engine) -> None:
    """schema_translate_map would keep the declared place under another schema: refused, ORM and Core."""
    translated = schema_engine.execution_options(schema_translate_map={SCHEMA: None})
    with Session(translated) as session, pytest.raises(ConfigurationError, match="schema_translate_map"):
        session.scalars(select(TenantUser)).all()
    with Session(translated) as session:
        session.add(TenantUser(id=5, ssn="555-55-5555"))
        with pytest.raises(ConfigurationError, match="schema_translate_map"):
            session.flush()
    with translated.connect() as conn, pytest.raises(ConfigurationError, match="schema_translate_map"):
        conn.execute(insert(TenantUser.__table__), [{"id": 6, "ssn": "666-66-6666"}])
