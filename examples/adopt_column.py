"""fieldcrypt adoption: encrypt an existing plaintext column while the application keeps working.

Run it from a checkout (``pip install -e '.[sqlalchemy]'`` first)::

    python examples/adopt_column.py

A legacy ``users`` table holds SSNs in clear. The application is deployed with
``Encrypted(..., transitional=True)``, so it reads plaintext and ciphertext alike and writes only
ciphertext; ``encrypt_column`` then converts the table batch by batch while the application reads
and writes between batches (docs/rotation.md, Runbook 1). Finally the plain type reads
everything and the blind index finds adopted rows. SQLite needs no widening; on PostgreSQL and
MariaDB ``fieldcrypt encrypt-column`` (or ``op.encrypt_column``) widens the column first.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import Integer, String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import rotation
from fieldcrypt.sqlalchemy import Encrypted, column_spec


class During(DeclarativeBase):
    pass


class User(During):
    """The application while the column is adopted."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ssn: Mapped[str] = mapped_column(Encrypted(String(11), keyring="pii", searchable=True, transitional=True))


class After(DeclarativeBase):
    pass


class AdoptedUser(After):
    """The application once ``fieldcrypt status users.ssn`` shows no plaintext left."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ssn: Mapped[str] = mapped_column(Encrypted(String(11), keyring="pii", searchable=True))


def main(directory: Path) -> None:
    engine = create_engine(f"sqlite:///{directory / 'app.db'}")
    key_store = fieldcrypt.SqlKeyStore(engine)  # data keys, wrapped, in table fieldcrypt_keys
    key_store.create_table()
    fieldcrypt.register(fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), key_store))
    with engine.begin() as conn:  # the legacy table, plus the (empty) blind-index column
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, ssn VARCHAR(11), ssn_bidx BLOB)"))
        for i in range(1, 7):
            conn.execute(
                text("INSERT INTO users (id, ssn) VALUES (:i, :s)"), {"i": i, "s": f"{i:03d}-45-678{i}"}
            )

    def between_batches(report: rotation.Report) -> None:
        with Session(engine) as session, session.begin():
            ssns = [u.ssn for u in session.scalars(select(User).order_by(User.id))]
            print(f"batch {report.batches}: {report.written} encrypted; the app reads {len(ssns)} SSNs")
            if report.batches == 1:
                session.add(User(id=7, ssn="777-45-6787"))  # a write during the move: ciphertext

    spec = column_spec("users", "ssn", During.metadata)  # options from the model
    rotation.encrypt_column(engine, spec, batch_size=2, progress=between_batches)
    rotation.reindex_column(engine, spec)  # the encrypt pass leaves the blind index empty
    print(f"plaintext left: {rotation.status(engine, spec).plaintext}")

    with engine.connect() as conn:
        stored = conn.execute(text("SELECT ssn FROM users WHERE id = 1")).scalar_one()
    print(f"the DBA sees:   {bytes(stored)[:24].hex()}... ({len(stored)} bytes)")
    with Session(engine) as session:
        print(f"the app reads:  {session.get_one(AdoptedUser, 1).ssn}")
        found = session.scalars(select(AdoptedUser.id).where(AdoptedUser.ssn == "004-45-6784")).one()
        print(f"found by SSN:   user {found}")
    engine.dispose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
