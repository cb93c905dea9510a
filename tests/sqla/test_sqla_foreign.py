"""Moving off sqlalchemy-utils and Fernet: values written by the real libraries are re-encrypted.

The old values are written by sqlalchemy-utils' own ``StringEncryptedType`` / ``EncryptedType``
and by cryptography's ``MultiFernet``; ``op.encrypt_column(..., from_=...)`` moves them, the
application reads both kinds meanwhile (``Encrypted(..., from_=...)``), and afterwards only
fieldcrypt ciphertext is stored.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from cryptography.fernet import Fernet as CryptographyFernet
from cryptography.fernet import MultiFernet
from sqlalchemy.orm import Session
from sqlalchemy_utils import EncryptedType, StringEncryptedType
from sqlalchemy_utils.types.encrypted.encrypted_type import AesEngine, AesGcmEngine, FernetEngine

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import format as fmt
from fieldcrypt import rotation
from fieldcrypt.errors import ConfigurationError, DecryptionError, QueryNotSupportedError
from fieldcrypt.foreign import Fernet, ForeignFormat, SqlalchemyUtils
from fieldcrypt.rotation import schema
from fieldcrypt.rotation.spec import Storage
from fieldcrypt.sqlalchemy import Encrypted, column_spec

OLD_KEY = "the old sqlalchemy-utils key"
ROWS = 24


def _ssn(i: int) -> str:
    return f"{i:03d}-55-{i:04d}"


# (id, the old column's type as sqlalchemy-utils declares it, the adoption source that reads it)
SOURCES: list[tuple[str, Callable[[], Any], Callable[[], ForeignFormat]]] = [
    (
        "aes-gcm",
        lambda: StringEncryptedType(sa.String, OLD_KEY, AesGcmEngine, length=255),
        lambda: SqlalchemyUtils(OLD_KEY, engine="aes-gcm"),
    ),
    (
        "aes-cbc-pkcs5",
        lambda: StringEncryptedType(sa.String, OLD_KEY, AesEngine, "pkcs5", length=255),
        lambda: SqlalchemyUtils(OLD_KEY, engine="aes-cbc", padding="pkcs5"),
    ),
    (
        "aes-cbc-naive-binary",
        lambda: EncryptedType(sa.String, OLD_KEY, AesEngine, length=255),
        lambda: SqlalchemyUtils(OLD_KEY, engine="aes-cbc"),
    ),
    (
        "fernet-engine",
        lambda: StringEncryptedType(sa.String, OLD_KEY, FernetEngine, length=255),
        lambda: Fernet.from_sqlalchemy_utils(OLD_KEY),
    ),
]


def _model(meta: sa.MetaData, column_type: Any) -> sa.Table:
    return sa.Table(
        "people",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", column_type),
    )


def _sqlalchemy_utils_rows(engine: sa.Engine, ids: range) -> None:
    """``people`` with AES-GCM values written by sqlalchemy-utils itself."""
    old = _model(sa.MetaData(), StringEncryptedType(sa.String, OLD_KEY, AesGcmEngine, length=255))
    old.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(old), [{"id": i, "ssn": _ssn(i)} for i in ids])


def _read(engine: sa.Engine, table: sa.Table) -> dict[int, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(table.c.id, table.c.ssn)).all())


def _move(engine: sa.Engine, new: Any, source: ForeignFormat) -> None:
    """op.encrypt_column(..., from_=source), as a revision runs it."""
    with engine.connect() as conn:
        ops = Operations(MigrationContext.configure(conn))
        ops.encrypt_column("people", "ssn", type_=new, from_=source, batch_size=7)


@pytest.mark.parametrize(("name", "old_type", "source"), SOURCES, ids=[s[0] for s in SOURCES])
def test_values_written_by_sqlalchemy_utils_move_to_fieldcrypt(
    engine: sa.Engine,
    keyring: fieldcrypt.Keyring,
    name: str,
    old_type: Callable[[], Any],
    source: Callable[[], Any],
) -> None:
    """sqlalchemy-utils values read before, during (half moved) and after the move; then only v1 ciphertext is stored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # EncryptedType's announced change of impl
        old = _model(sa.MetaData(), old_type())
        old.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(old), [{"id": i, "ssn": _ssn(i)} for i in range(1, ROWS + 1)])
        assert _read(engine, old) == {i: _ssn(i) for i in range(1, ROWS + 1)}  # sqlalchemy-utils reads them

    during = _model(sa.MetaData(), Encrypted(sa.String(11), keyring="pii", from_=source()))
    assert _read(engine, during) == {i: _ssn(i) for i in range(1, ROWS + 1)}  # before the move
    with engine.begin() as conn:
        schema.widen(conn, "people", "ssn", Storage.BINARY)  # what the operation does first

    class Crash(Exception):
        pass

    def crash(_report: rotation.Report) -> None:
        raise Crash

    with pytest.raises(Crash):
        rotation.encrypt_column(engine, column_spec("people", "ssn", during), batch_size=10, progress=crash)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(during), [{"id": ROWS + 1, "ssn": _ssn(ROWS + 1)}]
        )  # the application writes on
    assert _read(engine, during) == {i: _ssn(i) for i in range(1, ROWS + 2)}  # half moved: both kinds read
    with Session(engine) as session, pytest.raises(QueryNotSupportedError, match="being adopted"):
        session.execute(sa.select(during).where(during.c.ssn == _ssn(1)))

    _move(engine, Encrypted(sa.String(11), keyring="pii"), source())
    after = _model(sa.MetaData(), Encrypted(sa.String(11), keyring="pii"))
    assert _read(engine, after) == {i: _ssn(i) for i in range(1, ROWS + 2)}
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("select id, ssn from people")).all())
    for i, value in stored.items():
        blob = bytes(value)
        assert fmt.looks_like_ciphertext(blob)
        assert keyring.decrypt(blob, fieldcrypt.Place("people", "ssn")) == _ssn(i).encode()


def test_multifernet_values_under_old_and_new_keys_move(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Tokens written by cryptography's MultiFernet under two keys move with Fernet([new, old]); an integer column too."""
    old_key, new_key = CryptographyFernet.generate_key(), CryptographyFernet.generate_key()
    writer_then, writer_now = (
        MultiFernet([CryptographyFernet(old_key)]),
        MultiFernet([CryptographyFernet(new_key)]),
    )
    meta = sa.MetaData()
    plain = sa.Table(
        "people",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", sa.Text),
        sa.Column("visits", sa.Text),
    )
    meta.create_all(engine)
    rows = [
        {
            "id": i,
            "ssn": (writer_then if i % 2 else writer_now).encrypt(_ssn(i).encode()).decode(),
            "visits": writer_then.encrypt(str(i * 3).encode()).decode(),
        }
        for i in range(1, 11)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(plain), rows)
    source = Fernet([new_key, old_key])
    with engine.connect() as conn:
        ops = Operations(MigrationContext.configure(conn))
        ops.encrypt_column(
            "people", "ssn", type_=Encrypted(sa.Text, keyring="pii", storage="text"), from_=source
        )
        ops.encrypt_column(
            "people", "visits", type_=Encrypted(sa.Integer, keyring="pii", storage="text"), from_=source
        )
    after = sa.Table(
        "people",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ssn", Encrypted(sa.Text, keyring="pii", storage="text")),
        sa.Column("visits", Encrypted(sa.Integer, keyring="pii", storage="text")),
    )
    with engine.connect() as conn:
        read = conn.execute(sa.select(after).order_by(after.c.id)).all()
    assert [(r.id, r.ssn, r.visits) for r in read] == [(i, _ssn(i), i * 3) for i in range(1, 11)]
    with engine.connect() as conn:
        for (value,) in conn.execute(sa.text("select ssn from people")):
            assert fmt.looks_like_ciphertext(fmt.from_text(value))


def test_a_value_under_another_key_is_listed_not_written(
    sqlite_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """With the wrong old key nothing is encrypted twice or taken for plaintext: the rows fail, untouched."""
    _sqlalchemy_utils_rows(sqlite_engine, range(1, 3))
    with sqlite_engine.connect() as conn:
        before = conn.execute(sa.text("select ssn from people order by id")).scalars().all()
    wrong = SqlalchemyUtils("not the key", engine="aes-gcm")
    spec = column_spec(
        "people", "ssn", _model(sa.MetaData(), Encrypted(sa.String(11), keyring="pii", from_=wrong))
    )
    report = rotation.encrypt_column(sqlite_engine, spec)
    assert (report.written, report.failed) == (0, 2)
    assert report.failures[0][1].startswith("ForeignValueError")
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.text("select ssn from people order by id")).scalars().all() == before
    reader = _model(sa.MetaData(), Encrypted(sa.String(11), keyring="pii", from_=wrong))
    with pytest.raises(DecryptionError, match=r"people\.ssn"):
        _read(sqlite_engine, reader)


def test_sources_check_their_options_and_hide_their_keys() -> None:
    """Bad engines, paddings or Fernet keys are refused when the source is made; reprs show no key."""
    with pytest.raises(ConfigurationError, match="engine must be"):
        SqlalchemyUtils(OLD_KEY, engine="des")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="padding must be"):
        SqlalchemyUtils(OLD_KEY, engine="aes-cbc", padding="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="a Fernet key is 32 bytes"):
        Fernet("short")
    key = CryptographyFernet.generate_key()
    assert key.decode() not in repr(Fernet(key))
    assert OLD_KEY not in repr(SqlalchemyUtils(OLD_KEY))
    assert "keys hidden" in repr(Encrypted(sa.String(11), keyring="pii", from_=Fernet(key)).from_)


def test_old_format_values_are_refused_once_from_is_removed(
    pg_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """After the move, a value written in the old format (by anyone holding the old key) no longer reads."""
    _sqlalchemy_utils_rows(pg_engine, range(1, 2))
    with pg_engine.begin() as conn:
        schema.widen(conn, "people", "ssn", Storage.BINARY)  # as the move left the column
    done = _model(sa.MetaData(), Encrypted(sa.String(11), keyring="pii"))
    with pytest.raises(DecryptionError, match=r"people\.ssn"):
        _read(pg_engine, done)
