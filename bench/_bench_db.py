"""The benchmarks' own databases: created when missing, so a benchmark never touches `test`."""

from __future__ import annotations

import sqlalchemy as sa

BENCH_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fieldcrypt_bench"
BENCH_MARIADB_URL = "mariadb+pymysql://root@127.0.0.1:3306/fieldcrypt_bench"


def own_database(url: str) -> sa.Engine:
    """An engine on the database named in ``url``, which is created first if it does not exist.

    Benchmarks drop and recreate their tables, so they refuse the shared `test` database.
    """
    target = sa.make_url(url)
    name = target.database or ""
    if not name.replace("_", "").isalnum() or name in {"test", "postgres", "mysql"}:
        raise SystemExit(f"benchmarks drop their tables: give them a database of their own, not {name!r}")
    admin = sa.create_engine(
        target.set(database="postgres" if target.get_backend_name() == "postgresql" else "mysql"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                if not conn.execute(
                    sa.text("select 1 from pg_database where datname = :n"), {"n": name}
                ).scalar():
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
    finally:
        admin.dispose()
    return sa.create_engine(target)
