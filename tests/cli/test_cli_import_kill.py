"""`fieldcrypt encrypt-column --from sqlalchemy-utils:aes-gcm` killed with SIGKILL mid-table, then rerun.

A few thousand rows written by sqlalchemy-utils itself, through bench/bench_import.py's own table
and filling (the benchmark times the same steps at 100,000 rows).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from bench_import import fill, people, ssn
from cli_helpers import kill_9_mid_run, payload
from click.testing import Result
from sqlalchemy_utils import StringEncryptedType
from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.foreign import SqlalchemyUtils
from fieldcrypt.sqlalchemy import Encrypted

ROWS = 3000
OLD_KEY = "sqlalchemy-utils secret"


def _done(engine: sa.Engine) -> int:
    """Rows already holding fieldcrypt ciphertext (read raw, as a DBA would)."""
    with engine.connect() as conn:
        values = conn.execute(sa.text("select ssn from people")).scalars().all()
    return sum(1 for v in values if isinstance(v, bytes | memoryview) and fmt.looks_like_ciphertext(bytes(v)))


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"], indirect=True)
def test_kill_9_of_an_import_from_sqlalchemy_utils_then_resume(
    engine: sa.Engine,
    keyring: fieldcrypt.Keyring,
    key_file: Path,
    tmp_path: Path,
    run: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL the import mid-table: the application reads both kinds meanwhile, and the rerun finishes."""
    fill(
        engine, StringEncryptedType(sa.String, OLD_KEY, AesGcmEngine, length=255), ROWS
    )  # by sqlalchemy-utils
    fieldcrypt.register(keyring)
    url = engine.url.render_as_string(hide_password=False)
    env = {
        **os.environ,
        "FIELDCRYPT_DATABASE_URL": url,
        "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
        "FIELDCRYPT_FROM_KEY": OLD_KEY,
    }
    checkpoints = tmp_path / "checkpoints"
    arguments = ["encrypt-column", "people.ssn", "--codec", "text", "--from", "sqlalchemy-utils:aes-gcm"]
    kill_9_mid_run([*arguments, "--batch-size", "20"], env, checkpoints)
    assert 0 < _done(engine) < ROWS  # stopped mid-table

    during = people(Encrypted(sa.String(11), keyring="pii", from_=SqlalchemyUtils(OLD_KEY, engine="aes-gcm")))
    with engine.connect() as conn:  # the application, meanwhile: every row reads
        assert dict(conn.execute(sa.select(during.c.id, during.c.ssn)).all()) == {
            i: ssn(i) for i in range(1, ROWS + 1)
        }

    monkeypatch.setenv("FIELDCRYPT_FROM_KEY", OLD_KEY)
    rerun = run(
        "encrypt-column",
        "people.ssn",
        "--codec",
        "text",
        "--from",
        "sqlalchemy-utils:aes-gcm",
        "--batch-size",
        "500",
        "--checkpoint-dir",
        str(checkpoints),
        json_output=True,
    )
    assert rerun.exit_code == 0, rerun.stderr
    assert payload(rerun)["resumed_after"] is not None
    assert _done(engine) == ROWS
    after = people(Encrypted(sa.String(11), keyring="pii"))
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(after.c.id, after.c.ssn)).all()) == {
            i: ssn(i) for i in range(1, ROWS + 1)
        }


def test_from_needs_a_known_source_and_a_key_in_the_environment() -> None:
    """--from names one of the sources and reads the old key from the environment, or refuses clearly."""
    from fieldcrypt.cli.columns import foreign_source
    from fieldcrypt.errors import ConfigurationError
    from fieldcrypt.foreign import Fernet

    with pytest.raises(ConfigurationError, match="needs the old key in the environment"):
        foreign_source("sqlalchemy-utils:aes-gcm", "")
    with pytest.raises(ConfigurationError, match="use sqlalchemy-utils:aes-gcm"):
        foreign_source("sqlalchemy-utils:des", OLD_KEY)
    assert foreign_source("sqlalchemy-utils:aes-cbc:pkcs5", OLD_KEY).padding == "pkcs5"
    assert isinstance(foreign_source("fernet", "a" * 43 + "=," + "b" * 43 + "="), Fernet)
