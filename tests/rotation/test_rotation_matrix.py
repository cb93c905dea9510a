"""Every declared type through the whole column lifecycle on SQLite, PostgreSQL and MariaDB:
encrypt_column -> status -> reencrypt -> verify -> decrypt_column, with the ORM reading what each
step wrote and raw SQL showing ciphertext after encrypt and plaintext after decrypt."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import format as fmt
from fieldcrypt import rotation
from fieldcrypt.sqlalchemy import Encrypted, column_spec


class Tier(enum.Enum):
    GOLD = "g"
    SILVER = "s"


UTC2 = dt.timezone(dt.timedelta(hours=2))


def _columns(dialect: str) -> dict[str, tuple[sa.types.TypeEngine[Any], dict[str, Any], list[Any]]]:
    """name -> (declared type, Encrypted options, two values); rows get these and a NULL."""
    aware = dialect == "postgresql"  # only PostgreSQL keeps an offset; the others store naive values
    # MariaDB's DATETIME keeps whole seconds unless declared DATETIME(6)
    stamp = dt.datetime(2024, 1, 31, 10, 20, 30, 0 if dialect == "mariadb" else 123456)
    return {
        "c_string": (sa.String(40), {}, ["123-45-6789", "O'Brien \u00e9"]),
        "c_text_storage": (sa.String(40), {"storage": "text"}, ["alpha", "beta"]),
        "c_text": (sa.Text(), {}, ["a longer note", ""]),
        "c_int": (sa.Integer(), {}, [41, -7]),
        "c_bigint": (sa.BigInteger(), {}, [2**40, -(2**40)]),
        "c_numeric": (sa.Numeric(10, 2), {}, [Decimal("1234.50"), Decimal("-0.25")]),
        "c_float": (sa.Float(), {}, [0.25, -1.5]),
        "c_bool": (sa.Boolean(), {}, [True, False]),
        "c_date": (sa.Date(), {}, [dt.date(1990, 1, 31), dt.date(2024, 2, 29)]),
        "c_datetime": (sa.DateTime(), {}, [stamp, stamp.replace(second=0)]),
        "c_datetime_tz": (
            sa.DateTime(timezone=True),
            {},
            [stamp.replace(tzinfo=UTC2 if aware else None), stamp.replace(tzinfo=dt.UTC if aware else None)],
        ),
        "c_time": (sa.Time(), {}, [dt.time(10, 20, 30), dt.time(23, 59)]),
        "c_uuid": (sa.Uuid(), {}, [uuid.UUID(int=1), uuid.UUID("12345678-1234-5678-1234-567812345678")]),
        "c_enum": (sa.Enum(Tier, name="tier"), {}, [Tier.GOLD, Tier.SILVER]),
        "c_json": (sa.JSON(none_as_null=True), {}, [{"a": [1, 2]}, ["x", None]]),
        "c_binary": (sa.LargeBinary(), {}, [b"\x00\xffraw", b"bytes"]),
    }


def _table(metadata: sa.MetaData, columns: dict[str, sa.types.TypeEngine[Any]]) -> sa.Table:
    return sa.Table(
        "matrix",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, type_) for name, type_ in columns.items()),
    )


def _read(engine: sa.Engine, table: sa.Table) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.id)).mappings().all()
    return {c.name: [r[c.name] for r in rows] for c in table.c if c.name != "id"}


def _raw(engine: sa.Engine, column: str) -> list[Any]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT {column} FROM matrix ORDER BY id")).scalars().all()
    return [bytes(v) if isinstance(v, memoryview | bytearray) else v for v in rows]


def _blob(value: Any, options: dict[str, Any]) -> bytes:
    return fmt.from_text(value) if options.get("storage") == "text" else value


def test_every_type_through_encrypt_reencrypt_verify_status_decrypt(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Each declared type survives encrypt_column, status, reencrypt, verify and decrypt_column:
    the ORM reads exactly what the plaintext column held, raw SQL holds only ciphertext in between."""
    columns = _columns(engine.dialect.name)
    plain = _table(sa.MetaData(), {n: t for n, (t, _, _) in columns.items()})
    plain.create(engine)
    rows = [{"id": i + 1, **{n: values[i] for n, (_, _, values) in columns.items()}} for i in range(2)]
    rows.append({"id": 3, **dict.fromkeys(columns)})
    with engine.begin() as conn:
        conn.execute(plain.insert(), rows)
    before = _read(engine, plain)  # what the application read before adoption
    for name, (_, _, values) in columns.items():
        assert before[name][:2] == values, name
    declared = {n: Encrypted(t, keyring="pii", **o) for n, (t, o, _) in columns.items()}
    model = _table(sa.MetaData(), declared)
    place = {n: fieldcrypt.Place("matrix", n) for n in columns}

    with engine.connect() as conn:  # encrypt_column, as a revision runs it
        op = Operations(MigrationContext.configure(conn))
        for name, (type_, _, _) in columns.items():
            op.encrypt_column("matrix", name, type_=declared[name], existing_type=type_)
        conn.commit()
    for name, (_, options, _) in columns.items():
        stored = _raw(engine, name)
        assert stored[2] is None, name
        for value in stored[:2]:
            blob = _blob(value, options)
            assert fmt.looks_like_ciphertext(blob), name
            keyring.decrypt(blob, place[name])
    assert _read(engine, model) == before

    first_key = keyring.current_key_id()
    for name in columns:
        found = rotation.status(engine, column_spec("matrix", name, model))
        assert (found.rows, found.null, found.plaintext, found.encrypted) == (3, 1, 0, 2), name
        assert dict(found.by_data_key) == {first_key: 2}

    keyring.rotate()
    with engine.connect() as conn:
        op = Operations(MigrationContext.configure(conn))
        for name in columns:
            op.reencrypt_column("matrix", name, type_=declared[name])
        conn.commit()
    new_key = keyring.current_key_id()
    for name, (_, options, _) in columns.items():
        assert {keyring.key_id_of(_blob(v, options)) for v in _raw(engine, name)[:2]} == {new_key}, name
        spec = column_spec("matrix", name, model)
        assert rotation.status(engine, spec).not_current == 0
        checked = rotation.verify(engine, spec)
        assert (checked.ok, checked.decrypted, checked.null) == (True, 2, 1), name
    assert _read(engine, model) == before

    with engine.connect() as conn:  # the downgrade
        op = Operations(MigrationContext.configure(conn))
        for name, (type_, _, _) in columns.items():
            op.decrypt_column("matrix", name, type_=declared[name], existing_type=type_)
        conn.commit()
    for name in columns:
        assert not any(isinstance(v, bytes) and fmt.looks_like_ciphertext(v) for v in _raw(engine, name)), (
            name
        )
    assert _read(engine, plain) == before


def test_interval_columns_rotate_and_verify_but_are_not_converted_in_place(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Interval values written through Encrypted(Interval) go through status, reencrypt and verify;
    encrypt_column and decrypt_column refuse it clearly before touching the column (it has no
    portable text form to read or write back)."""
    declared = Encrypted(sa.Interval(), keyring="pii")
    model = _table(sa.MetaData(), {"c_interval": declared})
    model.create(engine)
    values = [dt.timedelta(days=1, hours=2), dt.timedelta(seconds=-30, microseconds=5), None]
    with engine.begin() as conn:
        conn.execute(model.insert(), [{"id": i + 1, "c_interval": v} for i, v in enumerate(values)])
    spec = column_spec("matrix", "c_interval", model)
    assert (rotation.status(engine, spec).encrypted, rotation.status(engine, spec).null) == (2, 1)
    keyring.rotate()
    assert rotation.reencrypt_column(engine, spec).written == 2
    assert rotation.verify(engine, spec).ok
    assert {keyring.key_id_of(v) for v in _raw(engine, "c_interval")[:2]} == {keyring.current_key_id()}
    assert _read(engine, model)["c_interval"] == values
    with engine.connect() as conn:
        op = Operations(MigrationContext.configure(conn))
        for verb in (op.encrypt_column, op.decrypt_column):
            with pytest.raises(
                fieldcrypt.ConfigurationError, match=r"^matrix\.c_interval: an Interval column cannot"
            ):
                verb("matrix", "c_interval", type_=declared, existing_type=sa.Interval())
    assert _read(engine, model)["c_interval"] == values
