"""Models with Encrypted columns type-check under mypy --strict, and mistakes are caught."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "typed_models.py"
    path.write_text(source)
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(path)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def test_models_type_check_strictly(tmp_path: Path) -> None:
    """Mapped[str], Mapped[date | None], Mapped[Decimal] over Encrypted columns pass mypy --strict."""
    result = _mypy(tmp_path, MODEL)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_a_wrongly_typed_value(tmp_path: Path) -> None:
    """Assigning an int to an encrypted Mapped[str] attribute is a mypy error."""
    result = _mypy(tmp_path, MODEL + "\n\ndef wrong(user: User) -> None:\n    user.ssn = 123\n")
    assert result.returncode == 1
    assert 'Incompatible types in assignment (expression has type "int", variable has type' in result.stdout
    assert "typed_models.py:29: error" in result.stdout
