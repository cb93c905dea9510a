"""``schema_translate_map``: one model served per tenant schema. Row-bound columns are bound to the
schema a statement really reaches (ORM and Core, writes, loads and upserts), as the CLI, the Alembic
operations and the rotation engine name it; a value copied between tenants fails. Columns whose
processors would keep the declared place (not row-bound, or searchable) stay refused. PostgreSQL,
with two schemas of this suite's own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from cli_helpers import payload
from click.testing import Result
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import ConfigurationError, DecryptionError, Place
from fieldcrypt.sqlalchemy import Encrypted, Sealed, column_spec

TENANT_A = f"{os.environ.get('FIELDCRYPT_TEST_DB', 'fieldcrypt_test')}_tenant_a"
TENANT_B = f"{os.environ.get('FIELDCRYPT_TEST_DB', 'fieldcrypt_test')}_tenant_b"


class TranslatedBase(DeclarativeBase):
    pass


class Patient(TranslatedBase):
    """Declared without a schema; each tenant's engine translates it to that tenant's schema."""

    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    notes: Mapped[str | None] = mapped_column(Encrypted(sa.Text, keyring="pii", bind_row=True))


class Adopted(TranslatedBase):
    __tablename__ = "adopted"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    notes: Mapped[str | None] = mapped_column(Encrypted(sa.Text, keyring="pii", bind_row=True))


class Customer(TranslatedBase):
    """Not row-bound: its processors would bind every tenant's values to the declared place."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(Encrypted(sa.String(11), keyring="pii"))


class Member(TranslatedBase):
    """Row-bound but searchable: its blind-index tokens are computed for the declared place."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str | None] = mapped_column(
        Encrypted(sa.String(60), keyring="pii", bind_row=True, searchable=True)
    )


plain_adopted = sa.Table(
    "adopted",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("notes", sa.Text),
)


@pytest.fixture
def engine(pg_engine: sa.Engine, own_schemas: Callable[[sa.Engine, str], str]) -> sa.Engine:
    """PostgreSQL with two tenant schemas, each holding the models' tables."""
    for tenant in (TENANT_A, TENANT_B):
        own_schemas(pg_engine, tenant)
        TranslatedBase.metadata.create_all(_tenant(pg_engine, tenant))
    return pg_engine


def _tenant(engine: sa.Engine, schema: str) -> sa.Engine:
    return engine.execution_options(schema_translate_map={None: schema})


def _raw(engine: sa.Engine, schema: str, table: str = "patients") -> dict[int, bytes]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT id, notes FROM {schema}.{table} ORDER BY id")
        return {i: bytes(v) for i, v in rows if v is not None}


def _notes(engine: sa.Engine, **options: Any) -> dict[int, str | None]:
    with Session(engine) as session:
        found = session.scalars(sa.select(Patient), execution_options=options)
        return {p.id: p.notes for p in found}


def test_row_bound_values_follow_the_translated_schema(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """ORM and Core writes (upserts too) seal to "<tenant>.patients"; loads open there; CLI verify of the tenant's column reads them; A's value copied to B's row fails."""
    fieldcrypt.register(keyring)
    tenant_a, tenant_b = _tenant(engine, TENANT_A), _tenant(engine, TENANT_B)
    for tenant, schema in ((tenant_a, TENANT_A), (tenant_b, TENANT_B)):
        with Session(tenant) as session:
            session.add(Patient(id=1, notes=f"{schema} one"))
            session.commit()
        with tenant.begin() as conn:
            conn.execute(sa.insert(Patient.__table__), [{"id": 2, "notes": f"{schema} two"}])
            conn.execute(sa.update(Patient.__table__).where(Patient.id == 2).values(notes=f"{schema} 2"))
            upsert = pg_insert(Patient.__table__)
            upsert = upsert.on_conflict_do_update(
                index_elements=["id"], set_={"notes": upsert.excluded.notes}
            )
            conn.execute(upsert, [{"id": 3, "notes": f"{schema} three"}])
            conn.execute(upsert, [{"id": 3, "notes": f"{schema} 3"}])

    stored = _raw(engine, TENANT_A)
    assert keyring.decrypt(stored[1], Place(f"{TENANT_A}.patients", "notes", 1)) == f"{TENANT_A} one".encode()
    for wrong in (Place("patients", "notes", 1), Place(f"{TENANT_B}.patients", "notes", 1)):
        with pytest.raises(DecryptionError):
            keyring.decrypt(stored[1], wrong)
    assert all(TENANT_A.encode() not in v for v in stored.values())
    expected = {t: {1: f"{t} one", 2: f"{t} 2", 3: f"{t} 3"} for t in (TENANT_A, TENANT_B)}
    assert _notes(tenant_a) == expected[TENANT_A]
    assert _notes(tenant_b) == expected[TENANT_B]
    # The map given per statement, or on the session's connection, counts the same way.
    assert _notes(engine, schema_translate_map={None: TENANT_B}) == expected[TENANT_B]
    with Session(engine) as session:
        session.connection(execution_options={"schema_translate_map": {None: TENANT_A}})
        patient = session.get_one(Patient, 1)
        assert patient.notes == f"{TENANT_A} one"
        patient.notes = "changed in A"
        session.commit()
    with tenant_a.connect() as conn:  # Core reads row-bound values as Sealed
        sealed = conn.execute(sa.select(Patient.notes).where(Patient.id == 1)).scalar_one()
    assert isinstance(sealed, Sealed)
    assert column_spec(
        "patients", "notes", TranslatedBase.metadata, schema_translate_map={None: TENANT_A}
    ).decrypt(sealed, row=1) == ("changed in A")

    verified = run("verify", f"{TENANT_A}.patients.notes", "--codec", "text", "--bind-row", json_output=True)
    assert (verified.exit_code, payload(verified)["decrypted"]) == (0, 3), verified.stderr
    untranslated = run("verify", "patients.notes", "--codec", "text", "--bind-row", json_output=True)
    assert untranslated.exit_code != 0  # the declared place is no tenant's

    # Tenant A's row 1 copied into tenant B's row 1: the same table, row and column, another schema.
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {TENANT_B}.patients SET notes = :v WHERE id = 1"),
            {"v": _raw(engine, TENANT_A)[1]},
        )
    with Session(tenant_b) as session, pytest.raises(DecryptionError, match=r"patients\.notes \(row 1\)"):
        session.get(Patient, 1)
    copied = run("verify", f"{TENANT_B}.patients.notes", "--codec", "text", "--bind-row", json_output=True)
    assert copied.exit_code != 0


def test_alembic_and_cli_adopt_a_tenant_schema_the_translated_model_reads(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """op.encrypt_column(..., schema=A) and `encrypt-column B.adopted.notes --bind-row` write what the model, translated to A or B, reads."""
    fieldcrypt.register(keyring)
    for schema in (TENANT_A, TENANT_B):
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {schema}.adopted")
        plain_adopted.create(_tenant(engine, schema))
        with _tenant(engine, schema).begin() as conn:
            conn.execute(plain_adopted.insert(), [{"id": 1, "notes": f"{schema} plain"}])
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            Operations(context).encrypt_column(
                "adopted", "notes", type_=Encrypted(sa.Text, keyring="pii", bind_row=True), schema=TENANT_A
            )
    adopted = run(
        "encrypt-column", f"{TENANT_B}.adopted.notes", "--codec", "text", "--bind-row", json_output=True
    )
    assert (adopted.exit_code, payload(adopted)["written"]) == (0, 1), adopted.stderr
    for schema in (TENANT_A, TENANT_B):
        assert f"{schema} plain".encode() not in _raw(engine, schema, "adopted")[1]
        with Session(_tenant(engine, schema)) as session:
            assert session.get_one(Adopted, 1).notes == f"{schema} plain"


def test_translating_columns_the_processors_bind_is_refused(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """A translated table with a column that is not row-bound, or is searchable, is refused (ORM and Core), naming bind_row."""
    fieldcrypt.register(keyring)
    tenant_a = _tenant(engine, TENANT_A)
    for model, column, value in ((Customer, "ssn", "123-45-6789"), (Member, "email", "a@example.com")):
        with Session(tenant_a) as session, pytest.raises(ConfigurationError, match="schema_translate_map"):
            session.scalars(sa.select(model)).all()
        with Session(tenant_a) as session:
            session.add(model(id=1, **{column: value}))
            with pytest.raises(ConfigurationError, match="schema_translate_map"):
                session.flush()
        with tenant_a.connect() as conn, pytest.raises(ConfigurationError, match="bind_row=True"):
            conn.execute(sa.insert(model.__table__), [{"id": 2, column: value}])
    # A map that leaves the table where it is declared changes nothing.
    Customer.__table__.create(engine)  # type: ignore[attr-defined]
    with Session(engine.execution_options(schema_translate_map={"elsewhere": TENANT_B})) as session:
        session.add(Customer(id=3, ssn="333-33-3333"))
        session.commit()
        assert session.get_one(Customer, 3).ssn == "333-33-3333"


def test_async_session_follows_the_translation(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """AsyncSession (asyncpg) writes and loads row-bound values in the translated schema, the map on the engine or per statement."""
    fieldcrypt.register(keyring)
    url = engine.url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)

    async def scenario() -> tuple[str | None, str | None]:
        async_engine = create_async_engine(url)
        tenant_b = async_engine.execution_options(schema_translate_map={None: TENANT_B})
        async with AsyncSession(tenant_b) as session:
            session.add(Patient(id=7, notes="async B"))
            await session.commit()
        async with AsyncSession(tenant_b) as session:
            on_engine = (await session.get_one(Patient, 7)).notes
        async with AsyncSession(async_engine) as session:
            per_statement = (
                (
                    await session.scalars(
                        sa.select(Patient).where(Patient.id == 7),
                        execution_options={"schema_translate_map": {None: TENANT_B}},
                    )
                )
                .one()
                .notes
            )
        await async_engine.dispose()
        return on_engine, per_statement

    assert asyncio.run(scenario()) == ("async B", "async B")
    assert keyring.decrypt(_raw(engine, TENANT_B)[7], Place(f"{TENANT_B}.patients", "notes", 7)) == b"async B"


def test_driver_sql_and_ddl_run_under_a_translating_engine(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Driver SQL and DDL carry no encrypted values: a translating engine runs them (a driver string once crashed the check)."""
    tenant_a = _tenant(engine, TENANT_A)
    with tenant_a.begin() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    Customer.__table__.drop(tenant_a)  # type: ignore[attr-defined]
    Customer.__table__.create(tenant_a)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM {TENANT_A}.customers").scalar_one() == 0
