"""Renaming an encrypted table and column through Alembic keeps every value readable.

The application declares ``bound_as=(old_table, old_column)`` and reads (and searches) every
value before the rename, after it while ``op.rebind_column`` has moved only part of the rows, and
after it has finished, when a model without ``bound_as`` reads them all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.orm import Session, registry

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import format as fmt
from fieldcrypt import rotation
from fieldcrypt.errors import ConfigurationError, DecryptionError, PossibleRenameWarning
from fieldcrypt.sqlalchemy import Encrypted, column_spec

ROWS = 25


def _ssn(i: int) -> str:
    return f"{i:03d}-{i % 100:02d}-{i:04d}"


def _model(
    table: str, column: str, bound_as: dict[str, tuple[str, str]] | None = None
) -> tuple[type, sa.Table]:
    """A mapped class over ``table`` with a searchable encrypted ``column`` and row-bound ``notes``."""
    old = bound_as or {}
    meta = sa.MetaData()
    people = sa.Table(
        table,
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            column,
            Encrypted(
                sa.String(11),
                keyring="pii",
                searchable=True,
                index_column="ssn_bidx",
                bound_as=old.get(column),
            ),
        ),
        sa.Column("notes", Encrypted(sa.Text, keyring="pii", bind_row=True, bound_as=old.get("notes"))),
    )

    class Person:
        pass

    registry().map_imperatively(Person, people)
    return Person, people


def _read_all(engine: sa.Engine, person: Any, column: str) -> dict[int, tuple[str, str]]:
    with Session(engine) as session:
        return {p.id: (getattr(p, column), p.notes) for p in session.scalars(sa.select(person))}


def _found(engine: sa.Engine, person: Any, column: str, value: str) -> list[int]:
    with Session(engine) as session:
        return [p.id for p in session.scalars(sa.select(person).where(getattr(person, column) == value))]


def _expected(rows: range) -> dict[int, tuple[str, str]]:
    return {i: (_ssn(i), f"note {i}") for i in rows}


def _rename(engine: sa.Engine) -> None:
    """The schema change a revision makes: rename the table, then the column (MySQL needs its type)."""
    with engine.begin() as conn:
        ops = Operations(MigrationContext.configure(conn))
        ops.rename_table("people", "patients")
        existing = {c["name"]: c for c in sa.inspect(conn).get_columns("patients")}["ssn"]
        ops.alter_column(
            "patients",
            "ssn",
            new_column_name="tax_ssn",
            existing_type=existing["type"],
            existing_nullable=True,
        )


def test_rename_table_and_column_reads_every_value_before_during_and_after(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """rename_table + alter_column(new_column_name) + rebind_column: every value reads and is found, throughout."""
    before, before_table = _model("people", "ssn")
    before_table.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        for i in range(1, ROWS + 1):
            person = before()
            person.id, person.ssn, person.notes = i, _ssn(i), f"note {i}"  # type: ignore[attr-defined]
            session.add(person)
    assert _read_all(engine, before, "ssn") == _expected(range(1, ROWS + 1))

    _rename(engine)
    moved = {"tax_ssn": ("people", "ssn"), "notes": ("people", "notes")}
    during, during_table = _model("patients", "tax_ssn", moved)
    plain, _ = _model("patients", "tax_ssn")
    with pytest.raises(DecryptionError):  # the trap bound_as exists for
        _read_all(engine, plain, "tax_ssn")
    assert _read_all(engine, during, "tax_ssn") == _expected(range(1, ROWS + 1))
    assert _found(engine, during, "tax_ssn", _ssn(7)) == [7]

    # Part of the move, then a crash: the application still reads both kinds of rows and writes new ones.
    class Crash(Exception):
        pass

    def crash_after_first_batch(report: rotation.Report) -> None:
        raise Crash

    spec = column_spec("patients", "tax_ssn", during_table)
    with pytest.raises(Crash):
        rotation.rebind_column(engine, spec, batch_size=10, progress=crash_after_first_batch)
    with Session(engine) as session, session.begin():
        person = during()
        person.id, person.tax_ssn, person.notes = ROWS + 1, _ssn(ROWS + 1), f"note {ROWS + 1}"  # type: ignore[attr-defined]
        session.add(person)
    assert _read_all(engine, during, "tax_ssn") == _expected(range(1, ROWS + 2))
    assert _found(engine, during, "tax_ssn", _ssn(3)) == [3]  # moved
    assert _found(engine, during, "tax_ssn", _ssn(20)) == [20]  # not yet moved
    assert _found(engine, during, "tax_ssn", _ssn(ROWS + 1)) == [ROWS + 1]  # written after the rename

    with engine.connect() as conn:
        ops = Operations(MigrationContext.configure(conn))
        for column in ("tax_ssn", "notes"):
            ops.rebind_column("patients", column, type_=during_table.c[column].type, batch_size=10)

    after, after_table = _model("patients", "tax_ssn")
    assert _read_all(engine, after, "tax_ssn") == _expected(range(1, ROWS + 2))
    assert all(_found(engine, after, "tax_ssn", _ssn(i)) == [i] for i in (1, 20, ROWS + 1))
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select id, tax_ssn, notes from patients")).all()
    for i, ssn, notes in stored:  # ciphertext only
        assert fmt.looks_like_ciphertext(bytes(ssn))
        assert _ssn(i).encode() not in bytes(ssn)
        assert fmt.looks_like_ciphertext(bytes(notes))
        assert b"note" not in bytes(notes)
    rerun = rotation.rebind_column(engine, column_spec("patients", "tax_ssn", during_table))
    assert (rerun.written, rerun.failed) == (0, 0)  # idempotent: nothing left at the old place
    del after_table


def test_rebind_needs_the_old_place() -> None:
    """op.rebind_column with a type that names no old place is refused before any row is read."""
    with pytest.raises(ConfigurationError, match=r"bound_as=\(old_table, old_column\)"):
        fieldcrypt.alembic.RebindColumnOp("patients", "notes", type_=Encrypted(sa.Text, keyring="pii"))


def test_bound_as_must_name_a_table_and_column() -> None:
    """bound_as is a (table, column) pair; anything else is refused when the type is declared."""
    with pytest.raises(ConfigurationError, match="bound_as must be a"):
        Encrypted(sa.Text, keyring="pii", bound_as=("people",))  # type: ignore[arg-type]


def _accounts(meta: sa.MetaData, column: str, bound_as: tuple[str, str] | None = None) -> sa.Table:
    return sa.Table(
        "accounts",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(column, Encrypted(sa.String(8), keyring="pii", bound_as=bound_as)),
    )


def test_autogenerate_turns_declared_renames_into_rename_and_rebind(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, alembic_config: Callable[..., Config], tmp_path: Path
) -> None:
    """With bound_as declared, autogenerate writes rename_table / alter_column + rebind_column, which upgrade unedited."""
    _, people = _model("people", "ssn")
    _accounts(people.metadata, "pin")
    people.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(people), [{"id": i, "ssn": _ssn(i), "notes": f"note {i}"} for i in range(1, 6)]
        )
        conn.execute(sa.insert(people.metadata.tables["accounts"]), [{"id": 1, "pin": "1234"}])
    moved = {"tax_ssn": ("people", "ssn"), "notes": ("people", "notes")}
    _, patients = _model("patients", "tax_ssn", moved)
    _accounts(patients.metadata, "code", ("accounts", "pin"))
    config = alembic_config(engine, patients.metadata)
    command.revision(config, message="renames", autogenerate=True, rev_id="0001")
    source = next((tmp_path / "migrations" / "versions").glob("0001_*.py")).read_text()
    upgrade = source.split("def upgrade()")[1].split("def downgrade()")[0]
    assert "op.rename_table('people', 'patients')" in upgrade
    assert "new_column_name='tax_ssn'" in upgrade
    assert "new_column_name='code'" in upgrade
    assert upgrade.count("op.rebind_column(") == 3
    assert "bound_as=('people', 'ssn')" in upgrade
    assert "drop_table" not in upgrade
    assert "drop_column" not in upgrade
    command.upgrade(config, "head")

    after, after_table = _model("patients", "tax_ssn")
    _accounts(after_table.metadata, "code")
    assert _read_all(engine, after, "tax_ssn") == _expected(range(1, 6))
    assert _found(engine, after, "tax_ssn", _ssn(4)) == [4]
    with engine.connect() as conn:
        assert conn.execute(sa.select(after_table.metadata.tables["accounts"].c.code)).scalar_one() == "1234"


def test_autogenerate_warns_about_an_undeclared_rename(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, alembic_config: Callable[..., Config], tmp_path: Path
) -> None:
    """A dropped column beside a new encrypted one without bound_as: PossibleRenameWarning, the ops left as written."""
    meta = sa.MetaData()
    _accounts(meta, "pin").create(engine)
    model = sa.MetaData()
    _accounts(model, "code")
    config = alembic_config(engine, model)
    with pytest.warns(PossibleRenameWarning, match=r"accounts: pin dropped while encrypted code is added"):
        command.revision(config, message="renames", autogenerate=True, rev_id="0001")
    source = next((tmp_path / "migrations" / "versions").glob("0001_*.py")).read_text()
    assert "op.drop_column('accounts', 'pin')" in source


def test_bound_as_accepts_only_the_named_old_place(
    sqlite_engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """A renamed column reads values bound to its old place, but a value copied from any other column fails."""
    _, table = _model("patients", "tax_ssn", {"tax_ssn": ("people", "ssn")})
    table.metadata.create_all(sqlite_engine)
    from_old = keyring.encrypt(b"111-11-1111", fieldcrypt.Place("people", "ssn"))
    from_other = keyring.encrypt(b"222-22-2222", fieldcrypt.Place("people", "phone"))
    with sqlite_engine.begin() as conn:
        conn.execute(
            sa.text("insert into patients (id, tax_ssn) values (1, :a), (2, :b)"),
            {"a": from_old, "b": from_other},
        )
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.select(table.c.tax_ssn).where(table.c.id == 1)).scalar_one() == "111-11-1111"
        with pytest.raises(DecryptionError, match=r"patients\.tax_ssn"):
            conn.execute(sa.select(table.c.tax_ssn).where(table.c.id == 2)).scalar_one()
