"""Models shared by the SQLAlchemy integration tests."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
    Unicode,
    Uuid,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fieldcrypt.sqlalchemy import Encrypted


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    ULTRAVIOLET = 3


def digits_only(value: str) -> str:
    """The SSN normaliser: dashes and spaces do not matter when searching."""
    return "".join(ch for ch in value if ch.isdigit())


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(50))
    ssn: Mapped[str | None] = mapped_column(
        Encrypted(String(11), keyring="pii", searchable=True, unique=True, normalizer=digits_only)
    )
    tax_id: Mapped[str | None] = mapped_column(Encrypted(String(11), keyring="pii"))
    email: Mapped[str | None] = mapped_column(
        Encrypted(String(120), keyring="pii", searchable=True, storage="text")
    )


class Patient(Base):
    """Row binding: client-assigned UUID keys; notes bound to their row."""

    __tablename__ = "patients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    mrn: Mapped[str | None] = mapped_column(
        Encrypted(String(20), keyring="pii", bind_row=True, searchable=True)
    )
    notes: Mapped[str | None] = mapped_column(Encrypted(Text, keyring="pii", bind_row=True))


class Counter(Base):
    """Row binding on a database-assigned key: must be refused."""

    __tablename__ = "counters"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    secret: Mapped[str | None] = mapped_column(Encrypted(String(20), keyring="pii", bind_row=True))


class Everything(Base):
    """One encrypted column per supported type."""

    __tablename__ = "everything"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    s: Mapped[str | None] = mapped_column(Encrypted(String(40), keyring="pii"))
    u: Mapped[str | None] = mapped_column(Encrypted(Unicode(40), keyring="pii"))
    t: Mapped[str | None] = mapped_column(Encrypted(Text, keyring="pii"))
    i: Mapped[int | None] = mapped_column(Encrypted(Integer, keyring="pii"))
    bi: Mapped[int | None] = mapped_column(Encrypted(BigInteger, keyring="pii"))
    si: Mapped[int | None] = mapped_column(Encrypted(SmallInteger, keyring="pii"))
    n: Mapped[Decimal | None] = mapped_column(Encrypted(Numeric(), keyring="pii"))
    f: Mapped[float | None] = mapped_column(Encrypted(Float, keyring="pii"))
    b: Mapped[bool | None] = mapped_column(Encrypted(Boolean, keyring="pii"))
    d: Mapped[dt.date | None] = mapped_column(Encrypted(Date, keyring="pii"))
    dtn: Mapped[dt.datetime | None] = mapped_column(Encrypted(DateTime, keyring="pii"))
    dtz: Mapped[dt.datetime | None] = mapped_column(Encrypted(DateTime(timezone=True), keyring="pii"))
    tm: Mapped[dt.time | None] = mapped_column(Encrypted(Time, keyring="pii"))
    iv: Mapped[dt.timedelta | None] = mapped_column(Encrypted(Interval, keyring="pii"))
    uu: Mapped[uuid.UUID | None] = mapped_column(Encrypted(Uuid, keyring="pii"))
    en: Mapped[Color | None] = mapped_column(Encrypted(SqlEnum(Color), keyring="pii"))
    js: Mapped[Any] = mapped_column(Encrypted(JSON, keyring="pii"), nullable=True)
    lb: Mapped[bytes | None] = mapped_column(Encrypted(LargeBinary, keyring="pii"))
    tx: Mapped[str | None] = mapped_column(Encrypted(String(40), keyring="pii", storage="text"))
