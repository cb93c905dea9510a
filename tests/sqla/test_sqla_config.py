"""Configuration errors, key rotation and key use through encrypted columns."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqla_models import Base, User
from sqlalchemy import ARRAY, Column, Integer, MetaData, PickleType, String, Table, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import ConfigurationError, Purpose
from fieldcrypt.sqlalchemy import Encrypted, column_spec, execute_verified
from fieldcrypt.testing import CountingMasterKey


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Encrypted(Encrypted(String(5), keyring="pii"), keyring="pii"),
            r"Encrypted\(Encrypted\(\.\.\.\)\) would encrypt twice",
        ),
        (lambda: Encrypted(PickleType(), keyring="pii"), "fieldcrypt cannot encrypt a PickleType column"),
        (lambda: Encrypted(ARRAY(Integer), keyring="pii"), "fieldcrypt cannot encrypt a ARRAY column"),
        (
            lambda: Encrypted(String(5), keyring="pii", storage="hex"),
            "storage must be 'binary' or 'text', not 'hex'",
        ),
        (lambda: Encrypted(String(5), keyring=""), "keyring must be the name of a registered keyring"),
    ],
)
def test_bad_declarations_fail_at_construction(build: object, message: str) -> None:
    """Mistakes in a column declaration raise ConfigurationError when the model is defined."""
    with pytest.raises(ConfigurationError, match=message):
        build()  # type: ignore[operator]


def test_index_column_name_clash_is_refused() -> None:
    """A searchable column whose index name is already taken by another column is refused."""
    with pytest.raises(ConfigurationError, match=r"t\.ssn_bidx already exists: fieldcrypt creates"):
        Table(
            "t",
            MetaData(),
            Column("id", Integer, primary_key=True),
            Column("ssn_bidx", String(5)),
            Column("ssn", Encrypted(String(11), keyring="pii", searchable=True)),
        )


def test_unregistered_keyring_is_a_clear_error_on_first_use(sqlite_engine: sa.Engine) -> None:
    """Models import before configuration; the first write names the missing keyring."""
    Base.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add(User(id=1, name="a", tax_id="1"))
        with pytest.raises(sa.exc.StatementError, match="no keyring named 'pii' is registered"):
            session.commit()


def test_table_copies_keep_their_own_place_and_index(
    keyring: fieldcrypt.Keyring, sqlite_engine: sa.Engine
) -> None:
    """Table.to_metadata copies the index column along; the copy encrypts and indexes as its own table."""
    copy = User.__table__.to_metadata(MetaData(), name="users_archive")
    assert [c.name for c in copy.columns].count("ssn_bidx") == 1
    assert copy.c.ssn.type.place == ("users_archive", "ssn")
    assert column_spec("users_archive", "ssn", copy).index_column == "ssn_bidx"
    assert User.__table__.c.ssn.type.place == ("users", "ssn")
    copy.create(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.insert(copy), [{"id": 1, "name": "a", "ssn": "123-45-6789"}])
        stored = conn.execute(sa.text("SELECT ssn_bidx FROM users_archive")).scalar_one()
        assert bytes(stored) == keyring.blind_index(b"123456789", fieldcrypt.Place("users_archive", "ssn"))
        found = execute_verified(conn, select(copy.c.id).where(copy.c.ssn == "123-45-6789"))
        assert found.scalar_one() == 1


def test_rotated_keys_keep_old_rows_readable_and_searchable(
    db: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """After rotating the data key and the blind-index key, old and new rows decrypt and are found."""
    with Session(db) as session:
        session.add(User(id=1, name="old", ssn="111-11-1111"))
        session.commit()
    keyring.rotate(Purpose.ENCRYPTION)
    keyring.rotate(Purpose.BLIND_INDEX)
    with Session(db) as session:
        session.add(User(id=2, name="new", ssn="222-22-2222"))
        session.commit()
    with Session(db) as session:
        assert session.scalars(select(User.id).where(User.ssn == "111-11-1111")).one() == 1
        assert session.scalars(select(User.id).where(User.ssn == "222-22-2222")).one() == 2
        assert [u.ssn for u in session.scalars(select(User).order_by(User.id))] == [
            "111-11-1111",
            "222-22-2222",
        ]
    assert len(keyring.records(Purpose.ENCRYPTION)) == 2


def test_many_rows_cost_a_handful_of_master_key_calls(sqlite_engine: sa.Engine) -> None:
    """Writing and reading 2,000 encrypted, indexed values makes three master-key calls in total."""
    master = CountingMasterKey(fieldcrypt.LocalMasterKey.generate())
    fieldcrypt.register(fieldcrypt.Keyring("pii", master, fieldcrypt.MemoryKeyStore()))
    Base.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add_all(User(id=i, name="n", ssn=f"{i:09d}", tax_id=str(i)) for i in range(2000))
        session.commit()
    with Session(sqlite_engine) as session:
        assert len([u.tax_id for u in session.scalars(select(User))]) == 2000
    assert master.calls == {"wrap": 3}  # anchor, data key, blind-index key; nothing unwrapped again


class _Composite(DeclarativeBase):
    pass


class Visit(_Composite):
    """Row binding on a composite key: the row is the tuple in primary-key column order."""

    __tablename__ = "visits"
    clinic: Mapped[str] = mapped_column(String(10), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    note: Mapped[str | None] = mapped_column(Encrypted(String(50), keyring="pii", bind_row=True))


def test_composite_primary_key_binds_the_key_tuple(
    sqlite_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """A composite-key row's values are bound to (clinic, number) and open only with that tuple."""
    _Composite.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add(Visit(clinic="north", number=7, note="fine"))
        session.commit()
    with Session(sqlite_engine) as session:
        assert session.get(Visit, ("north", 7)).note == "fine"  # type: ignore[union-attr]
    with sqlite_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT note FROM visits")).scalar_one()
    spec = column_spec("visits", "note", _Composite.metadata)
    assert spec.decrypt(bytes(stored), row=("north", 7)) == "fine"
    with pytest.raises(fieldcrypt.DecryptionError, match=r"row \('north', 8\)"):
        spec.decrypt(bytes(stored), row=("north", 8))
