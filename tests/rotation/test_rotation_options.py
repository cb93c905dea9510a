"""A column's options come from its Encrypted type: reproduced bugs of the free-string codec era
(Enum autogenerate, BOOLEAN/FLOAT adopted as text, SQLite adoption of typed columns), each attacked."""

from __future__ import annotations

import datetime as dt
import enum
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.orm import Session

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import format as fmt
from fieldcrypt import rotation
from fieldcrypt.sqlalchemy import Encrypted, column_spec


class Mood(enum.Enum):
    HAPPY = "h"
    GRUMPY = "g"


def _table(metadata: sa.MetaData, **columns: Any) -> sa.Table:
    return sa.Table(
        "people",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, type_) for name, type_ in columns.items()),
    )


def _raw(engine: sa.Engine, column: str) -> dict[int, Any]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, {column} FROM people ORDER BY id")).all()
    return {r[0]: bytes(r[1]) if isinstance(r[1], memoryview) else r[1] for r in rows}


def _op(conn: sa.Connection) -> Operations:
    return Operations(MigrationContext.configure(conn))


def test_enum_column_change_autogenerates_a_working_encrypt_column(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Enum -> Encrypted(Enum) renders op.encrypt_column(..., type_=Encrypted(Enum(Mood))) that runs
    unedited and the ORM reads Mood members back (it rendered codec='enum', an unknown codec)."""
    plain = _table(sa.MetaData(), mood=sa.Enum(Mood, name="mood"))
    plain.create(engine)
    with engine.begin() as conn:
        conn.execute(
            plain.insert(),
            [{"id": 1, "mood": Mood.HAPPY}, {"id": 2, "mood": Mood.GRUMPY}, {"id": 3, "mood": None}],
        )
    model = sa.MetaData()
    declared = _table(model, mood=Encrypted(sa.Enum(Mood, name="mood"), keyring="pii"))
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "target_metadata": model,
                "include_name": lambda name, kind, _: kind != "table" or name == "people",
            },
        )
        script = produce_migrations(context, model)
        fieldcrypt.alembic.process_revision_directives(context, ("head",), [script])
        assert script.upgrade_ops is not None
        code = render_python_code(script.upgrade_ops)
    assert (
        f"op.encrypt_column('people', 'mood', type_=fieldcrypt.sqlalchemy.Encrypted("
        f"sa.Enum({Mood.__module__}.Mood), keyring='pii'), existing_type="
    ) in code
    assert "codec" not in code
    with engine.connect() as conn:
        namespace = {
            "op": _op(conn),
            "sa": sa,
            "fieldcrypt": fieldcrypt,
            "postgresql": postgresql,  # imports autogenerate adds to the revision file
            "mysql": mysql,
            Mood.__module__: sys.modules[Mood.__module__],
        }
        exec(compile(textwrap.dedent(code.split("\n", 1)[1]), "<revision>", "exec"), namespace)  # noqa: S102
        conn.commit()
    stored = _raw(engine, "mood")
    assert stored[3] is None
    assert keyring.decrypt(stored[1], fieldcrypt.Place("people", "mood")) == b"HAPPY"
    with Session(engine) as session:
        assert session.execute(sa.select(declared.c.mood).order_by(declared.c.id)).scalars().all() == [
            Mood.HAPPY,
            Mood.GRUMPY,
            None,
        ]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_boolean_and_float_columns_adopt_with_their_own_codec(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """op.encrypt_column(type_=Encrypted(Boolean/Float)) on PostgreSQL BOOLEAN/FLOAT columns reads back
    through the ORM (the text default made every Boolean row fail and Float raise struct.error);
    a type that contradicts the column is refused before anything is written."""
    plain = _table(sa.MetaData(), ok=sa.Boolean(), ratio=sa.Float())
    plain.create(engine)
    with engine.begin() as conn:
        conn.execute(
            plain.insert(), [{"id": 1, "ok": True, "ratio": 0.25}, {"id": 2, "ok": False, "ratio": -1.5}]
        )
    with (
        engine.connect() as conn,
        pytest.raises(
            fieldcrypt.ConfigurationError,
            match=r"^people\.ok: the column in the database is BOOLEAN, whose values are bool values, but the "
            r"declared Encrypted type encrypts text values",
        ),
    ):
        _op(conn).encrypt_column("people", "ok", type_=Encrypted(sa.String(5), keyring="pii"))
    assert _raw(engine, "ok") == {1: True, 2: False}
    with engine.connect() as conn:
        op = _op(conn)
        op.encrypt_column(
            "people", "ok", type_=Encrypted(sa.Boolean(), keyring="pii"), existing_type=sa.Boolean()
        )
        op.encrypt_column(
            "people", "ratio", type_=Encrypted(sa.Float(), keyring="pii"), existing_type=sa.Float()
        )
        conn.commit()
    assert all(fmt.looks_like_ciphertext(v) for v in _raw(engine, "ok").values())
    model = _table(
        sa.MetaData(), ok=Encrypted(sa.Boolean(), keyring="pii"), ratio=Encrypted(sa.Float(), keyring="pii")
    )
    with engine.connect() as conn:
        assert conn.execute(sa.select(model.c.ok, model.c.ratio).order_by(model.c.id)).all() == [
            (True, 0.25),
            (False, -1.5),
        ]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_sqlite_adoption_of_date_float_boolean_columns(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """On SQLite (no ALTER: the reflected DATE/FLOAT/BOOLEAN types stay), the engine reads and
    writes values raw and binds ciphertext as bytes; it used to fail with StatementError."""
    types = {"born": sa.Date(), "ratio": sa.Float(), "ok": sa.Boolean()}
    plain = _table(sa.MetaData(), **types)
    plain.create(engine)
    rows = [
        {"id": 1, "born": dt.date(1990, 1, 31), "ratio": 0.5, "ok": True},
        {"id": 2, "born": None, "ratio": 2.0, "ok": False},
    ]
    with engine.begin() as conn:
        conn.execute(plain.insert(), rows)
    model = _table(sa.MetaData(), **{n: Encrypted(t, keyring="pii") for n, t in types.items()})
    for name in types:
        report = rotation.encrypt_column(engine, column_spec("people", name, model))
        assert (report.failed, report.conflicts) == (0, 0)
        assert all(v is None or fmt.looks_like_ciphertext(v) for v in _raw(engine, name).values())
    with engine.connect() as conn:
        read = conn.execute(sa.select(model).order_by(model.c.id)).mappings().all()
    assert [dict(r) for r in read] == rows


def test_ops_refuse_anything_but_an_encrypted_type() -> None:
    """type_= is required and must be Encrypted(...): there is no codec string or default to fall back on."""
    with pytest.raises(
        fieldcrypt.ConfigurationError, match=r"type_= must be the column's Encrypted\(\.\.\.\) type"
    ):
        fieldcrypt.alembic.EncryptColumnOp("users", "ssn", type_=sa.String(11))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'keyring'"):
        fieldcrypt.alembic.EncryptColumnOp(
            "users", "ssn", type_=Encrypted(sa.String(11), keyring="pii"), keyring="pii"
        )  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'type_'"):
        fieldcrypt.alembic.EncryptColumnOp("users", "ssn")  # type: ignore[call-arg]
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"type_ is not searchable"):
        fieldcrypt.alembic.RotateBlindIndexOp("users", "ssn", type_=Encrypted(sa.String(11), keyring="pii"))


def test_a_revision_using_the_ops_passes_mypy_strict(tmp_path: Path) -> None:
    """The typed op functions (and the repository's own revisions) pass mypy --strict at the call
    site; a misspelt option is caught by the type checker."""
    root = Path(__file__).resolve().parents[2]
    good = tmp_path / "rev_good.py"
    good.write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa

            from fieldcrypt.alembic import op
            from fieldcrypt.sqlalchemy import Encrypted

            SSN = Encrypted(sa.String(11), keyring="pii", searchable=True)
            MOVED = Encrypted(sa.String(11), keyring="pii", bound_as=("users", "ssn"))


            def upgrade() -> None:
                op.create_key_store()
                op.encrypt_column("users", "ssn", type_=SSN, existing_type=sa.String(11), batch_size=500)
                op.reencrypt_column("users", "ssn", type_=SSN, rotate=True)
                op.rotate_blind_index("users", "ssn", type_=SSN, settle_seconds=0)
                op.rebind_column("people", "ssn", type_=MOVED)
                op.rewrap_keys("pii", "file:next.key", remove_old=True)


            def downgrade() -> None:
                op.decrypt_column("users", "ssn", type_=SSN, existing_type=sa.String(11))
            """
        )
    )
    bad = tmp_path / "rev_bad.py"
    bad.write_text(
        "from fieldcrypt.alembic import op\n\n\ndef upgrade() -> None:\n"
        '    op.encrypt_column("users", "ssn", keyring="pii", codec="text")\n'
    )
    revisions = sorted(str(p) for p in (root / "migrations" / "versions").glob("*.py"))
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(good), *revisions],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert checked.returncode == 0, checked.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert refused.returncode == 1
    # The functions are derived from the operations' __init__ (ParamSpec), so mypy names the line.
    assert 'rev_bad.py:5: error: Unexpected keyword argument "keyring"' in refused.stdout
    assert 'rev_bad.py:5: error: Unexpected keyword argument "codec"' in refused.stdout
