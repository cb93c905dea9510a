"""Column options read from the application's models (--metadata): the engine's writes read back
through fieldcrypt.sqlalchemy.Encrypted, and the other way round."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result
from rotation_helpers import raw

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.sqlalchemy.spec import column_spec

MODELS = """
import sqlalchemy as sa
from fieldcrypt.sqlalchemy import Encrypted

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ssn", Encrypted(sa.String(11), keyring="pii", storage="text")),
    sa.Column("birth", Encrypted(sa.Date, keyring="pii", bind_row=True)),
)
"""


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """An application models module (text-storage ssn, row-bound birth date) on sys.path."""
    (tmp_path / "fc_cli_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fc_cli_models", raising=False)
    import fc_cli_models

    yield fc_cli_models
    sys.modules.pop("fc_cli_models", None)


def test_reencrypt_with_options_from_the_models(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring, models: object
) -> None:
    """reencrypt --metadata picks up text storage, the Date codec and row binding from Encrypted(...)."""
    fieldcrypt.register(keyring)
    users = models.users  # type: ignore[attr-defined]
    models.metadata.create_all(engine)  # type: ignore[attr-defined]
    births = {i: dt.date(1970 + i, 1 + i % 12, 1 + i % 28) for i in range(1, 9)}
    with engine.begin() as conn:
        conn.execute(
            users.insert(), [{"id": i, "ssn": f"{i:03d}-00-0000", "birth": b} for i, b in births.items()]
        )
    new = keyring.rotate().key_id
    for column in ("ssn", "birth"):
        result = run("--metadata", "fc_cli_models:metadata", "reencrypt", f"users.{column}", json_output=True)
        assert result.exit_code == 0, result.stderr
        assert payload(result)["written"] == 8
    assert {keyring.key_id_of(fmt.from_text(v)) for v in raw(engine, "ssn").values()} == {new}
    assert {keyring.key_id_of(v) for v in raw(engine, "birth").values()} == {new}
    with engine.connect() as conn:
        ssns = dict(conn.execute(sa.select(users.c.id, users.c.ssn)).all())
    assert ssns == {i: f"{i:03d}-00-0000" for i in births}
    # Row-bound values come back sealed from Core; the integration's column spec opens them.
    birth_spec = column_spec("users", "birth", models.metadata)  # type: ignore[attr-defined]
    assert {i: birth_spec.decrypt(v, row=i) for i, v in raw(engine, "birth").items()} == births
    refused = run("--metadata", "fc_cli_models:metadata", "reencrypt", "users.ssn", "--storage", "binary")
    assert refused.exit_code == 3
    assert "with --metadata the column options come from the model" in refused.stderr
