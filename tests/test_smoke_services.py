"""The services the suite depends on are really there."""

from typing import Any

import sqlalchemy as sa


def test_each_database_answers(engine: sa.Engine) -> None:
    """SQLite, PostgreSQL and MariaDB each run a query."""
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar() == 1


def test_moto_kms_answers_over_http(aws_client: Any, moto_endpoint: str) -> None:
    """moto's KMS server creates a key over HTTP on loopback."""
    assert moto_endpoint.startswith("http://127.0.0.1:")
    arn = aws_client("kms").create_key()["KeyMetadata"]["Arn"]
    assert arn.startswith("arn:aws:kms:us-east-1:")


def test_server_databases_are_the_suites_own(pg_engine: sa.Engine, mariadb_engine: sa.Engine) -> None:
    """Fixtures work in a database of their own (created if missing), never in the shared `test`."""
    for engine in (pg_engine, mariadb_engine):
        with engine.connect() as conn:
            current = conn.execute(
                sa.text(
                    "select current_database()"
                    if engine.dialect.name == "postgresql"
                    else "select database()"
                )
            ).scalar()
        assert current not in {"test", "postgres", "mysql"}
        assert current == engine.url.database
