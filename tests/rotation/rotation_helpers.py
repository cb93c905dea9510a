"""Helpers shared by the rotation and CLI tests: a users table with plaintext or encrypted SSNs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

import fieldcrypt


def ssn(i: int) -> str:
    return f"{i % 1000:03d}-{i % 100:02d}-{i:04d}"[:11]


def create_users(engine: sa.Engine, ssn_type: Any = None, rows: Iterable[tuple[int, Any]] = ()) -> sa.Table:
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(64)),
        sa.Column("ssn", ssn_type if ssn_type is not None else sa.String(11)),
    )
    table.create(engine)
    data = [{"id": i, "email": f"u{i}@example.com", "ssn": v} for i, v in rows]
    if data:
        with engine.begin() as conn:
            conn.execute(table.insert(), data)
    return table


def create_indexed_users(engine: sa.Engine, rows: Iterable[dict[str, Any]] = ()) -> sa.Table:
    """users(id, ssn, ssn_bidx), both binary: an encrypted column beside its blind index."""
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", sa.LargeBinary),
        sa.Column("ssn_bidx", sa.LargeBinary),
    )
    table.create(engine)
    data = list(rows)
    if data:
        with engine.begin() as conn:
            conn.execute(table.insert(), data)
    return table


def encrypted_rows(keyring: fieldcrypt.Keyring, n: int, start: int = 1) -> list[tuple[int, bytes]]:
    place = fieldcrypt.Place("users", "ssn")
    return [(i, keyring.encrypt(ssn(i), place)) for i in range(start, start + n)]


def raw(engine: sa.Engine, column: str = "ssn") -> dict[int, Any]:
    """The stored values, by plain SQL."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, {column} FROM users ORDER BY id")).all()
    return {r[0]: (bytes(r[1]) if isinstance(r[1], memoryview) else r[1]) for r in rows}


class ResponseBody:
    """The raw body of a canned botocore response (for ``before-send`` hooks faking KMS errors)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data
