"""AsyncSession on PostgreSQL with asyncpg; after warm_up the event loop never waits on the master key."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqla_models import Base, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

import fieldcrypt
from fieldcrypt.sqlalchemy import warm_up
from fieldcrypt.testing import CountingMasterKey


def _asyncpg_url(sync_engine: sa.Engine) -> str:
    url = sync_engine.url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def test_async_session_round_trip_with_asyncpg(pg_engine: sa.Engine) -> None:
    """Insert, search and read through AsyncSession; warm_up did every master-key call beforehand."""
    master = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    store = fieldcrypt.SqlKeyStore(pg_engine)
    store.create_table()
    fieldcrypt.register(fieldcrypt.Keyring("pii", master, store))
    Base.metadata.create_all(pg_engine)

    async def scenario() -> tuple[str | None, list[int], int]:
        await warm_up("pii")  # in a worker thread: creates/unwraps the data and index keys
        calls_after_warm_up = master.total
        engine = create_async_engine(_asyncpg_url(pg_engine))
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        async with sessions() as session:
            session.add_all(
                [User(id=1, name="a", ssn="123-45-6789"), User(id=2, name="b", ssn="111-22-3333")]
            )
            await session.commit()
        async with sessions() as session:
            found = (await session.scalars(sa.select(User).where(User.ssn == "111-22-3333"))).one()
            ids = sorted((await session.scalars(sa.select(User.id).where(User.ssn.in_(["123456789"])))).all())
            user = await session.get(User, 1)
            assert user is not None
            user.ssn = "999-99-9999"
            await session.commit()
        await engine.dispose()
        return found.ssn, [*ids, found.id], master.total - calls_after_warm_up

    ssn, ids, master_calls = asyncio.run(scenario())
    assert (ssn, ids) == ("111-22-3333", [1, 2])
    assert master_calls == 0
    assert master.total >= 2  # warm_up did make the calls: one wrap per key
    row = raw_rows(pg_engine, "SELECT ssn FROM users WHERE id = 1")[0]
    assert_ciphertext(row.ssn, b"999-99-9999")
