"""Models with Encrypted columns type-check under mypy --strict, and mistakes are caught."""

from __future__ import annotations

from pathlib import Path

from typecheck import assert_accepted, assert_rejected

MODEL = """
import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, Numeric, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from fieldcrypt.sqlalchemy import Encrypted


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    ssn: Mapped[str] = mapped_column(Encrypted(String(11), keyring="pii", searchable=True))
    birth: Mapped[dt.date | None] = mapped_column(Encrypted(Date, keyring="pii"))
    salary: Mapped[Decimal] = mapped_column(Encrypted(Numeric(12, 2), keyring="pii"))


def find(session: Session, ssn: str) -> dt.date | None:
    user = session.scalars(select(User).where(User.ssn == ssn)).one()
    return user.birth
"""


def test_models_type_check_strictly(tmp_path: Path) -> None:
    """Mapped[str], Mapped[date | None], Mapped[Decimal] over Encrypted columns pass mypy --strict."""
    assert_accepted(tmp_path / "typed_models.py", MODEL)


def test_mypy_catches_a_wrongly_typed_value(tmp_path: Path) -> None:
    """Assigning an int to an encrypted Mapped[str] attribute is a mypy error."""
    assert_rejected(
        tmp_path / "typed_models.py",
        MODEL + "\n\ndef wrong(user: User) -> None:\n    user.ssn = 123\n",
        line=29,
        message='Incompatible types in assignment (expression has type "int", variable has type "SQLCoreOperations[str] | str")',
    )
