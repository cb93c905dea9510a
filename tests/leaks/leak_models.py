"""A table with encrypted and plain columns, and master keys that fail the way KMS does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import Date, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fieldcrypt.errors import KeyAccessError
from fieldcrypt.sqlalchemy import Encrypted

SSN = "219-09-9999"
NOTE = "diagnosis: sensitive-note-4711"
PLAINTEXTS = (SSN, NOTE, "219099999")  # the SSN normalised for its blind index too


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "leak_people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(50))
    born: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    ssn: Mapped[str | None] = mapped_column(
        Encrypted(String(11), keyring="pii", searchable=True, unique=True)
    )
    note: Mapped[str | None] = mapped_column(Encrypted(Text, keyring="pii"))


class Orphan(Base):
    """A column naming a keyring nobody registered."""

    __tablename__ = "leak_orphans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    secret: Mapped[str | None] = mapped_column(Encrypted(String(40), keyring="nowhere"))


class RefusingMasterKey:
    """A master key whose every use is refused, as KMS refuses a role without kms:Encrypt."""

    key_id = "arn:aws:kms:us-east-1:111122223333:key/refusing"

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        raise KeyAccessError(
            f"KMS Encrypt with {self.key_id} failed (AccessDeniedException): grant kms:Encrypt",
            master_key_id=self.key_id,
            code="AccessDeniedException",
        )

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        raise KeyAccessError("KMS Decrypt failed (AccessDeniedException)", code="AccessDeniedException")

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return recorded_key_id == self.key_id
