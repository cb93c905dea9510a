"""docs/rotation.md Runbook 4 followed step by step on a keyring with two searchable columns, with
every search checked after every step, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result

import fieldcrypt
from fieldcrypt import DuplicateValueError
from fieldcrypt.keys.record import Purpose, Status
from fieldcrypt.sqlalchemy import execute_verified

MODELS = """
import sqlalchemy as sa
from fieldcrypt.sqlalchemy import Encrypted


def digits(value):
    return value.replace("-", "")


def lower(value):
    return value.lower()


metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ssn", Encrypted(sa.String(11), keyring="pii", searchable=True, unique=True, normalizer=digits)),
    sa.Column("email", Encrypted(sa.String(64), keyring="pii", searchable=True, normalizer=lower)),
)
"""
PEOPLE = {1: ("123-45-6789", "Alice@Example.com"), 2: ("987-65-4321", "bob@example.com")}


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The application's models (ssn unique and normalised to digits, email lower-cased) on sys.path."""
    (tmp_path / "fc_bidx_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fc_bidx_models", raising=False)
    import fc_bidx_models

    yield fc_bidx_models
    sys.modules.pop("fc_bidx_models", None)


@pytest.fixture
def app(engine: sa.Engine, keyring: fieldcrypt.Keyring, models: Any) -> sa.Table:
    """The application: keyring registered, users table made and written through the models."""
    fieldcrypt.register(keyring)
    models.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(models.users.insert(), [{"id": i, "ssn": s, "email": e} for i, (s, e) in PEOPLE.items()])
    return models.users  # type: ignore[no-any-return]


def found(engine: sa.Engine, users: sa.Table, column: str, value: str) -> list[int]:
    with engine.connect() as conn:
        return sorted(execute_verified(conn, sa.select(users.c.id).where(users.c[column] == value)).scalars())


def assert_every_search_works(engine: sa.Engine, users: sa.Table) -> None:
    """Each row is found by its SSN (any spelling) and its e-mail (any case), and only it."""
    for i, (ssn, email) in PEOPLE.items():
        assert found(engine, users, "ssn", ssn) == [i]
        assert found(engine, users, "ssn", ssn.replace("-", "")) == [i]
        assert found(engine, users, "email", email.upper()) == [i]


def index_keys(keyring: fieldcrypt.Keyring) -> list[tuple[str, Status]]:
    return [(r.key_id, r.status) for r in keyring.records(Purpose.BLIND_INDEX)]


def test_runbook_4_keeps_every_search_working(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring, app: sa.Table
) -> None:
    """Runbook 4 on ssn then email: no step loses a search, the shared old key retires only at the end."""
    assert_every_search_works(engine, app)
    [(old, _)] = index_keys(keyring)

    rotated = run("keys", "rotate", "--purpose", "blind_index")  # step 1
    assert rotated.exit_code == 0, rotated.stderr
    keyring.refresh()  # step 2, "sleep 60": the application has noticed the new key
    assert_every_search_works(engine, app)
    with pytest.raises(DuplicateValueError), engine.begin() as conn:  # unique=True holds meanwhile
        conn.execute(app.insert(), [{"id": 3, "ssn": "123456789", "email": "carol@example.com"}])

    # Step 3 without the models: the normaliser is unknown, so reindex refuses to run at all.
    blind = run("reindex", "users.ssn", "--codec", "text", "--retire-old")
    assert blind.exit_code == 3, blind.stderr
    assert "normalizer fc_bidx_models.digits" in blind.stderr
    assert "--metadata" in blind.stderr
    assert_every_search_works(engine, app)

    ssn = run("--metadata", "fc_bidx_models:metadata", "reindex", "users.ssn", "--retire-old")  # step 3
    assert ssn.exit_code == 0, ssn.stderr
    assert f"blind-index key {old} kept: still used by users.email" in ssn.stderr
    keyring.refresh()
    assert index_keys(keyring)[0] == (old, Status.ACTIVE)
    assert_every_search_works(engine, app)

    refused = run("keys", "retire", old)  # retiring it by hand is refused the same way
    assert refused.exit_code == 3
    assert "still used by users.email" in refused.stderr
    assert_every_search_works(engine, app)

    email = run("--metadata", "fc_bidx_models:metadata", "reindex", "users.email", "--retire-old")
    assert email.exit_code == 0, email.stderr
    assert f"blind-index key {old} retired" in email.stderr
    keyring.refresh()
    [(_, retired), (new, active)] = index_keys(keyring)
    assert (retired, active) == (Status.RETIRED, Status.ACTIVE)
    assert_every_search_works(engine, app)
    # Every stored token is the new key's: the database holds index tokens only, no value.
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, ssn, ssn_bidx, email_bidx FROM users")).all()
    for i, stored, ssn_token, email_token in rows:
        assert PEOPLE[i][0].encode() not in bytes(stored)
        place = fieldcrypt.Place("users", "ssn")
        assert bytes(ssn_token) == keyring.blind_index(PEOPLE[i][0].replace("-", ""), place)
        assert bytes(email_token) == keyring.blind_index(
            PEOPLE[i][1].lower(), fieldcrypt.Place("users", "email")
        )
    assert new != old
