"""Row binding survives every primary-key form: keys are canonicalised through the key column's type."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqla_helpers import assert_ciphertext, raw_rows
from sqlalchemy import CHAR, Integer, Numeric, String, Uuid, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import ConfigurationError
from fieldcrypt.sqlalchemy import Encrypted


class KeyBase(DeclarativeBase):
    pass


def _secret() -> Any:
    return mapped_column(Encrypted(String(20), keyring="pii", bind_row=True))


class UuidKey(KeyBase):
    __tablename__ = "rk_uuid"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    secret: Mapped[str | None] = _secret()


class UuidTextKey(KeyBase):
    __tablename__ = "rk_uuid_text"
    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    secret: Mapped[str | None] = _secret()


class IntKey(KeyBase):
    __tablename__ = "rk_int"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    secret: Mapped[str | None] = _secret()


class NumericKey(KeyBase):
    __tablename__ = "rk_numeric"
    id: Mapped[Decimal] = mapped_column(Numeric(10, 2), primary_key=True, autoincrement=False)
    secret: Mapped[str | None] = _secret()


class CharKey(KeyBase):
    __tablename__ = "rk_char"
    id: Mapped[str] = mapped_column(CHAR(8), primary_key=True)
    secret: Mapped[str | None] = _secret()


class DefaultKey(KeyBase):
    __tablename__ = "rk_default"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    secret: Mapped[str | None] = _secret()


@pytest.fixture
def keyed(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> Iterator[sa.Engine]:
    """The key-form tables on each database."""
    KeyBase.metadata.create_all(engine)
    yield engine
    KeyBase.metadata.drop_all(engine)


U = uuid.UUID("6f1c2a3e-0d4b-4c5a-9e8f-7a6b5c4d3e2f")
FORMS: list[tuple[type[Any], Any]] = [
    (UuidKey, str(U).upper()),  # a UUID key given as text
    (UuidTextKey, U),  # a text-typed UUID key given as a UUID
    (IntKey, "5"),  # an Integer key given as text
    (NumericKey, 5),  # a Numeric(10, 2) key given as an int, read back as Decimal('5.00')
    (CharKey, "ab"),  # a CHAR(8) key: PostgreSQL pads it to "ab      " on read
]


@pytest.mark.parametrize(("model", "key"), FORMS, ids=[m.__name__ for m, _ in FORMS])
def test_row_bound_values_survive_a_new_session(keyed: sa.Engine, model: type[Any], key: Any) -> None:
    """A key set in another form than the database returns still opens its values in a new session."""
    with Session(keyed) as session:
        session.add(model(id=key, secret="s3cret value"))
        session.commit()
    assert_ciphertext(raw_rows(keyed, f"SELECT secret FROM {model.__tablename__}")[0][0], b"s3cret value")
    with Session(keyed) as session:
        (found,) = session.scalars(select(model)).all()
        assert found.secret == "s3cret value"


def test_python_side_default_key_is_used_to_bind(keyed: sa.Engine) -> None:
    """default=uuid.uuid4 is evaluated before the write: ORM and Core inserts are bound to the key the row gets."""
    with Session(keyed) as session:
        row = DefaultKey(secret="orm value")
        session.add(row)
        session.commit()
        orm_id = row.id
    with keyed.begin() as conn:
        conn.execute(insert(DefaultKey.__table__), [{"secret": "core value 1"}, {"secret": "core value 2"}])
    with Session(keyed) as session:
        found = {r.id: r.secret for r in session.scalars(select(DefaultKey))}
    assert found[orm_id] == "orm value"
    assert sorted(v for k, v in found.items() if k != orm_id) == ["core value 1", "core value 2"]
    assert all(isinstance(k, uuid.UUID) for k in found)


def test_a_key_that_cannot_read_back_is_refused_at_flush(keyed: sa.Engine) -> None:
    """An Integer key given as "five" is refused at flush with a message naming the column, not the value."""
    with Session(keyed) as session:
        session.add(IntKey(id="five", secret="x"))
        with pytest.raises(
            ConfigurationError, match=r"rk_int\.secret is bound to its row.*type str"
        ) as caught:
            session.flush()
    assert "five" not in str(caught.value)
