"""What a DBA with SELECT-only access sees through psql: ciphertext, never the values."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext
from sqla_models import Base, User
from sqlalchemy.orm import Session

from fieldcrypt.testing import local_keyring

ROLE = "fc_sqla_dba_reader"


@pytest.fixture
def reader_role(pg_engine: sa.Engine) -> Iterator[str]:
    """A login role with only SELECT on users (dropped afterwards)."""
    local_keyring("pii")
    Base.metadata.create_all(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {ROLE}") if _role_exists(conn) else sa.text("SELECT 1"))
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {ROLE}"))
        conn.execute(sa.text(f"CREATE ROLE {ROLE} LOGIN"))
        conn.execute(sa.text(f"GRANT SELECT ON users TO {ROLE}"))
    yield ROLE
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {ROLE}"))
        conn.execute(sa.text(f"DROP ROLE {ROLE}"))


def _role_exists(conn: sa.Connection) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE}).first() is not None


def _psql(engine: sa.Engine, role: str, sql: str) -> subprocess.CompletedProcess[str]:
    url = engine.url
    command = ["psql", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", role]
    command += ["-d", url.database or "test", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_select_only_role_sees_v1_ciphertext_through_psql(pg_engine: sa.Engine, reader_role: str) -> None:
    """psql as a SELECT-only role prints hex that parses as format v1 and holds no plaintext."""
    with Session(pg_engine) as session:
        session.add(User(id=1, name="Ada", ssn="123-45-6789", tax_id="98-7654321", email="ada@example.com"))
        session.commit()
    result = _psql(
        pg_engine, reader_role, "SELECT name, encode(ssn, 'hex'), encode(tax_id, 'hex'), email FROM users"
    )
    assert result.returncode == 0, result.stderr
    name, ssn_hex, tax_hex, email = result.stdout.strip().split("|")
    assert name == "Ada"  # plaintext columns stay readable, as intended
    assert "123-45-6789" not in result.stdout
    assert "ada@example.com" not in result.stdout
    assert_ciphertext(bytes.fromhex(ssn_hex), b"123-45-6789")
    assert_ciphertext(bytes.fromhex(tax_hex), b"98-7654321")
    assert_ciphertext(email, b"ada@example.com")
