"""fieldcrypt quickstart: encrypted SQLAlchemy columns on SQLite with a local master key.

Run it from a checkout (``pip install -e '.[sqlalchemy]'`` first)::

    python examples/quickstart.py                 # works in a fresh temporary directory
    python examples/quickstart.py --dir .fieldcrypt/quickstart   # keep the key and database

It prints the row a DBA (or a stolen backup) sees next to what the application reads, then finds
a user by SSN through the blind index. No AWS account is needed: the master key is a local file.
In production the master key is a ``fieldcrypt.KmsMasterKey`` and nothing else changes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from sqlalchemy import Date, String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt.sqlalchemy import Encrypted


def digits(ssn: str) -> str:
    """Normaliser: "123-45-6789", "123 45 6789" and "123456789" are the same SSN."""
    return "".join(ch for ch in ssn if ch.isdigit())


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    ssn: Mapped[str] = mapped_column(Encrypted(String(11), keyring="pii", searchable=True, normalizer=digits))
    birth: Mapped[dt.date | None] = mapped_column(Encrypted(Date, keyring="pii"))


def setup(directory: Path) -> Session:
    """Open (or create) the master key, the key store and the app's tables in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file = directory / "master.key"  # keep it out of the repository and the backups
    if key_file.exists():
        master_key = fieldcrypt.LocalMasterKey.from_file(key_file)
    else:
        master_key = fieldcrypt.LocalMasterKey.write_new(key_file)
    engine = create_engine(f"sqlite:///{directory / 'app.db'}")
    key_store = fieldcrypt.SqlKeyStore(engine)  # data keys, wrapped, in table fieldcrypt_keys
    key_store.create_table()
    fieldcrypt.register(fieldcrypt.Keyring("pii", master_key, key_store), replace=True)
    Base.metadata.create_all(engine)
    return Session(engine)


def show(title: str, rows: list[tuple[object, ...]]) -> None:
    print(f"\n{title}")
    for row in rows:
        print("  " + " | ".join(_cell(v) for v in row))


def _cell(value: object) -> str:
    if isinstance(value, bytes):
        # Version byte 01, then 20 bytes of data key id, nonce, ciphertext and tag: show the ends.
        return f"{value[:1].hex()} {value[1:5].hex()}...{value[-8:].hex()} ({len(value)} bytes)"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="keep the master key and database here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, setup(args.dir or Path(scratch)) as session:
        session.execute(text("DELETE FROM users"))  # start the demo afresh on every run
        session.add_all(
            [
                User(id=1, name="Ada Lovelace", ssn="123-45-6789", birth=dt.date(1815, 12, 10)),
                User(id=2, name="Alan Turing", ssn="987-65-4321", birth=dt.date(1912, 6, 23)),
            ]
        )
        session.commit()

        raw = session.execute(text("SELECT id, name, ssn, birth FROM users ORDER BY id")).all()
        show("What the DBA sees (SELECT id, name, ssn, birth FROM users):", [tuple(r) for r in raw])
        users = session.scalars(select(User).order_by(User.id)).all()
        show("What the application reads:", [(u.id, u.name, u.ssn, u.birth) for u in users])

        found = session.scalars(select(User).where(User.ssn == "987 65 4321")).one()
        print(f'\nSearch by SSN "987 65 4321" (blind index): {found.name}')
        try:
            select(User).where(User.ssn.like("123%"))
        except fieldcrypt.QueryNotSupportedError as refused:
            print(f"Refused, instead of silently matching nothing: {refused}")


if __name__ == "__main__":
    main()
