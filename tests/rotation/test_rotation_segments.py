"""Segments of tables whose primary key is not one integer: UUID, string and composite keys are
split by a hash of the key on PostgreSQL and MariaDB; SQLite says what it needs."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import ConfigurationError
from fieldcrypt.rotation import ColumnSpec, reencrypt_column, status

ROWS = 60


def _table(engine: sa.Engine, keyring: fieldcrypt.Keyring, kind: str) -> sa.Table:
    """notes(key..., secret) with ROWS values under the keyring's current key."""
    keys = {
        "uuid": [sa.Column("id", sa.Uuid, primary_key=True)],
        "string": [sa.Column("code", sa.String(40), primary_key=True)],
        "composite": [
            sa.Column("tenant", sa.String(20), primary_key=True),
            sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
        ],
    }[kind]
    table = sa.Table("notes", sa.MetaData(), *keys, sa.Column("secret", sa.LargeBinary))
    table.create(engine)
    place = fieldcrypt.Place("notes", "secret")
    rows = []
    for i in range(ROWS):
        key = {
            "uuid": {"id": uuid.uuid4()},
            "string": {"code": f"c-{i:04d}-{uuid.uuid4().hex[:6]}"},
            "composite": {"tenant": f"t{i % 4}", "n": i},
        }[kind]
        rows.append(key | {"secret": keyring.encrypt(f"note {i}", place)})
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    return table


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("kind", ["uuid", "string", "composite"])
def test_segments_of_any_ordered_key_cover_every_row_once(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, kind: str
) -> None:
    """Segments 0/3..2/3 of a UUID, string or composite key: disjoint, together every row, each moved once."""
    table = _table(engine, keyring, kind)
    new = keyring.rotate().key_id
    spec = ColumnSpec("notes", "secret", keyring="pii", codec="text")
    reports = [reencrypt_column(engine, spec, segment=f"{i}/3", batch_size=7) for i in range(3)]
    assert sum(r.scanned for r in reports) == ROWS
    assert sum(r.written for r in reports) == ROWS
    assert all(0 < r.total < ROWS for r in reports)  # a real split, not one segment holding all
    with engine.connect() as conn:
        stored = [bytes(v) for v in conn.execute(sa.select(table.c.secret)).scalars()]
    assert {keyring.key_id_of(v) for v in stored} == {new}
    assert status(engine, spec).rows == ROWS


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_sqlite_segments_need_one_integer_key(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """On SQLite a non-integer key cannot be split: the message says what is required."""
    _table(engine, keyring, "string")
    spec = ColumnSpec("notes", "secret", keyring="pii", codec="text")
    with pytest.raises(ConfigurationError, match=r"on SQLite, segments need a single integer primary key"):
        reencrypt_column(engine, spec, segment="0/2")
    assert reencrypt_column(engine, spec).scanned == ROWS  # one job still works
