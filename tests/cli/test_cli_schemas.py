"""The CLI names a column of a non-default schema as ``SCHEMA.TABLE.COLUMN`` and binds it where the
schema-qualified model does: the ORM writes and the CLI reads, checks and re-encrypts; the CLI
adopts and the ORM reads (a PostgreSQL schema, a MariaDB database)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import Place
from fieldcrypt.sqlalchemy import Encrypted

SCHEMA = f"{os.environ.get('FIELDCRYPT_TEST_DB', 'fieldcrypt_test')}_cli_tenant"


class CliSchemaBase(DeclarativeBase):
    pass


class SchemaUser(CliSchemaBase):
    __tablename__ = "users"
    __table_args__ = {"schema": SCHEMA}  # noqa: RUF012 - SQLAlchemy's declarative spelling
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(Encrypted(sa.String(11), keyring="pii"))
    birth_ssn: Mapped[str | None] = mapped_column(Encrypted(sa.String(11), keyring="pii", bind_row=True))


plain_users = sa.Table(
    "plain_users",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ssn", sa.String(11)),
    schema=SCHEMA,
)


class AdoptedUser(CliSchemaBase):
    __tablename__ = "plain_users"
    __table_args__ = {"schema": SCHEMA}  # noqa: RUF012 - SQLAlchemy's declarative spelling
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(Encrypted(sa.String(11), keyring="pii"))


@pytest.fixture(params=["postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest, own_schemas: Callable[[sa.Engine, str], str]) -> sa.Engine:
    """PostgreSQL with a second schema, MariaDB with a second database, both this suite's own."""
    engine: sa.Engine = request.getfixturevalue(
        f"{'pg' if request.param == 'postgresql' else 'mariadb'}_engine"
    )
    own_schemas(engine, SCHEMA)
    return engine


def _raw(engine: sa.Engine, table: str, column: str = "ssn") -> dict[int, bytes]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT id, {column} FROM {SCHEMA}.{table} ORDER BY id")
        return {i: bytes(v) for i, v in rows}


def test_orm_writes_in_a_schema_and_the_cli_reads_verifies_and_reencrypts(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """The ORM writes SCHEMA.users; decrypt --place, status, verify and reencrypt of SCHEMA.users.ssn read it; a wrong schema fails."""
    fieldcrypt.register(keyring)
    SchemaUser.__table__.create(engine)  # type: ignore[attr-defined]
    with Session(engine) as session:
        session.add_all(
            [SchemaUser(id=i, ssn=f"{i:03d}-00-0000", birth_ssn=f"{i:03d}-11-1111") for i in (1, 2)]
        )
        session.commit()
    stored = _raw(engine, "users")
    assert all(b"-00-0000" not in v for v in stored.values())
    text = base64.b64encode(stored[1]).decode()

    read = run("decrypt", "--place", f"{SCHEMA}.users.ssn", "--value", text)
    assert (read.exit_code, read.stdout) == (0, "001-00-0000"), read.stderr
    unqualified = run("decrypt", "--place", "users.ssn", "--value", text)
    assert (unqualified.exit_code, "cannot decrypt users.ssn" in unqualified.stderr) == (5, True)

    target = f"{SCHEMA}.users.ssn"
    status = run("status", target, "--codec", "text", json_output=True)
    assert (status.exit_code, payload(status)["plaintext"], payload(status)["by_master_key"]) == (
        0,
        0,
        {keyring.master_key.key_id: 2},
    )
    verified = run("verify", target, "--codec", "text", json_output=True)
    assert (verified.exit_code, payload(verified)["decrypted"]) == (0, 2), verified.stderr
    bound = run("verify", f"{SCHEMA}.users.birth_ssn", "--codec", "text", "--bind-row", json_output=True)
    assert (bound.exit_code, payload(bound)["decrypted"]) == (0, 2), bound.stderr
    assert run("verify", "users.ssn", "--codec", "text").exit_code != 0  # the default schema's table

    keyring.rotate()
    for column in ("ssn", "birth_ssn"):
        flags = ["--bind-row"] if column == "birth_ssn" else []
        moved = run("reencrypt", f"{SCHEMA}.users.{column}", "--codec", "text", *flags, json_output=True)
        assert (moved.exit_code, payload(moved)["written"]) == (0, 2), moved.stderr
    assert _raw(engine, "users") != stored
    with Session(engine) as session:
        assert {u.id: (u.ssn, u.birth_ssn) for u in session.scalars(sa.select(SchemaUser))} == {
            i: (f"{i:03d}-00-0000", f"{i:03d}-11-1111") for i in (1, 2)
        }


def test_cli_adopts_a_column_in_a_schema_and_the_orm_reads_it(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """encrypt-column SCHEMA.plain_users.ssn binds to Place("SCHEMA.plain_users", "ssn"), as the schema-qualified model reads it."""
    fieldcrypt.register(keyring)
    plain_users.create(engine)
    with engine.begin() as conn:
        conn.execute(plain_users.insert(), [{"id": 1, "ssn": "123-45-6789"}, {"id": 2, "ssn": "987-65-4321"}])
    adopted = run("encrypt-column", f"{SCHEMA}.plain_users.ssn", "--codec", "text", json_output=True)
    assert (adopted.exit_code, payload(adopted)["written"]) == (0, 2), adopted.stderr
    stored = _raw(engine, "plain_users")
    assert keyring.decrypt(stored[1], Place(f"{SCHEMA}.plain_users", "ssn")) == b"123-45-6789"
    assert b"123-45-6789" not in stored[1]
    with Session(engine) as session:
        assert {u.id: u.ssn for u in session.scalars(sa.select(AdoptedUser))} == {
            1: "123-45-6789",
            2: "987-65-4321",
        }
    status = run("status", f"{SCHEMA}.plain_users.ssn", "--codec", "text", json_output=True)
    assert (status.exit_code, payload(status)["plaintext"]) == (0, 0)
