"""CLI output and files: no database password, no key material, no markup from data, whole key ids,
and SQL type strings that cannot smuggle statements."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from leak_scanner import Secrets

import fieldcrypt
from cli_runner import cli_runner
from fieldcrypt import config as cli_config
from fieldcrypt.cli import cli
from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, utcnow

PASSWORD = "s3cret-pw-4711"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return cli_runner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _output(result: Result) -> str:
    return result.stdout + result.stderr


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test in its own directory, no inherited settings, a fresh engine cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FIELDCRYPT_CONFIG", raising=False)
    cli_config._engines.clear()
    yield
    for engine in cli_config._engines.values():
        engine.dispose()
    cli_config._engines.clear()


@pytest.fixture
def password_url(pg_engine: sa.Engine) -> str:
    """The suite's PostgreSQL database, reached with a password in the URL (trust auth ignores it)."""
    return pg_engine.url.set(password=PASSWORD).render_as_string(hide_password=False)


def test_init_never_shows_or_stores_the_database_password(tmp_path: Path, password_url: str) -> None:
    """init with a password URL: not on stderr, not in --json, not in fieldcrypt.toml (mode 0600)."""
    human = invoke("--database-url", password_url, "init")
    assert human.exit_code == 0, human.stderr
    config = tmp_path / "fieldcrypt.toml"
    as_json = invoke(
        "--database-url",
        password_url,
        "--keyring",
        "second",
        "--json",
        "init",
        "--key-file",
        "second.key",
        "--no-write-config",
    )
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout)["database_url"].endswith(
        "@127.0.0.1:5432/" + sa.make_url(password_url).database
    )
    assert "***" in json.loads(as_json.stdout)["database_url"]
    for text in (_output(human), _output(as_json), config.read_text()):
        assert PASSWORD not in text
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "FIELDCRYPT_DATABASE_URL" in config.read_text()
    listed = invoke("keys", "list", env={"FIELDCRYPT_DATABASE_URL": password_url})
    assert listed.exit_code == 0, listed.stderr  # the file plus the variable configure the CLI
    assert PASSWORD not in _output(listed)


def test_init_on_a_passwordless_url_writes_a_private_config(tmp_path: Path) -> None:
    """Without a password the URL is kept in fieldcrypt.toml, still readable by its owner only."""
    assert invoke("init").exit_code == 0
    config = tmp_path / "fieldcrypt.toml"
    assert 'database_url = "sqlite:///fieldcrypt.db"' in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert invoke("keys", "list").exit_code == 0


def test_a_key_given_as_master_key_uri_is_never_echoed(secrets: Secrets) -> None:
    """A base64 master key put where its name belongs: a clear error, the key nowhere in the output."""
    raw = bytes(range(40, 72))
    result = invoke(
        "--json",
        "keys",
        "list",
        env={
            "FIELDCRYPT_MASTER_KEY_URI": base64.b64encode(raw).decode(),
            "FIELDCRYPT_DATABASE_URL": "sqlite:///x.db",
        },
    )
    assert result.exit_code == 3
    assert "is not a KMS key ARN, file:PATH" in result.stderr
    secrets.key(raw, "master key pasted as its URI").assert_clean(_output(result), "CLI output")


def test_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    """LocalMasterKey.from_file refuses a key file others can read, unless told the sharing is deliberate."""
    path = tmp_path / "master.key"
    fieldcrypt.LocalMasterKey.write_new(path)
    path.chmod(0o640)
    with pytest.raises(fieldcrypt.ConfigurationError, match=r"readable or writable by others \(mode 0640\)"):
        fieldcrypt.LocalMasterKey.from_file(path)
    assert fieldcrypt.LocalMasterKey.from_file(path, allow_shared=True).key_id.startswith("local:")
    result = invoke("--master-key", f"file:{path}", "--database-url", "sqlite:///x.db", "keys", "list")
    assert result.exit_code == 3
    assert "chmod 600" in result.stderr


def _keys_cli(tmp_path: Path) -> dict[str, str]:
    key_file = tmp_path / "master.key"
    fieldcrypt.LocalMasterKey.write_new(key_file)
    return {"FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}", "FIELDCRYPT_DATABASE_URL": "sqlite:///keys.db"}


def test_keys_list_never_wraps_key_ids(tmp_path: Path) -> None:
    """At 80 columns every 40-hex key id is printed whole on one line."""
    env = _keys_cli(tmp_path) | {"COLUMNS": "80"}
    fieldcrypt.SqlKeyStore(sa.create_engine("sqlite:///keys.db")).create_table()  # keys under env's key
    ids = [json.loads(invoke("--json", "keys", "rotate", env=env).stdout)["key_id"] for _ in range(2)]
    listed = invoke("keys", "list", env=env)
    assert listed.exit_code == 0, listed.stderr
    assert all(len(line) <= 80 for line in listed.stderr.splitlines())
    for key_id in ids:
        assert key_id in listed.stderr


def test_retire_and_destroy_take_an_unambiguous_prefix(tmp_path: Path) -> None:
    """An 8-hex prefix names a key; shorter is refused; a shared prefix lists the candidates."""
    env = _keys_cli(tmp_path)
    fieldcrypt.SqlKeyStore(sa.create_engine("sqlite:///keys.db")).create_table()  # keys under env's key
    key_id = json.loads(invoke("--json", "keys", "rotate", env=env).stdout)["key_id"]
    retired = invoke("--json", "keys", "retire", key_id[:8], env=env)
    assert (retired.exit_code, json.loads(retired.stdout)["status"]) == (0, "retired")
    assert invoke("keys", "retire", key_id[:7], env=env).exit_code == 2
    store = fieldcrypt.SqlKeyStore(sa.create_engine("sqlite:///keys.db"))
    twins = ["abcdef01" + "0" * 32, "abcdef01" + "1" * 32]
    for twin in twins:
        store.put(DataKeyRecord(twin, "pii", Purpose.ENCRYPTION, Status.RETIRED, utcnow(), {"local:x": b"w"}))
    ambiguous = invoke("keys", "destroy", "abcdef01", "--yes", env=env)
    assert ambiguous.exit_code == 2
    assert all(twin in ambiguous.stderr for twin in twins)
    destroyed = invoke("--json", "keys", "destroy", twins[1][:12], "--yes", env=env)
    assert (destroyed.exit_code, json.loads(destroyed.stdout)["key_id"]) == (0, twins[1])


def test_verify_prints_primary_keys_as_data_not_markup(tmp_path: Path) -> None:
    """Row keys `[/]` and `[link=...]` are printed as typed: no crash, no injected terminal markup."""
    env = _keys_cli(tmp_path)
    engine = sa.create_engine("sqlite:///keys.db")
    table = sa.Table(
        "docs",
        sa.MetaData(),
        sa.Column("id", sa.String(60), primary_key=True),
        sa.Column("body", sa.LargeBinary),
    )
    table.create(engine)
    keyring = fieldcrypt.Keyring(
        "pii", fieldcrypt.LocalMasterKey.from_file(tmp_path / "master.key"), fieldcrypt.SqlKeyStore(engine)
    )
    keyring.key_store.create_table()  # type: ignore[attr-defined]
    misplaced = keyring.encrypt("x", fieldcrypt.Place("other", "body"))  # fails to decrypt here
    hostile = ["[/]", "[link=https://example.invalid]click[/link]", "[bold red]alarm"]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": key, "body": misplaced} for key in hostile])
    result = invoke("verify", "docs.body", "--codec", "text", env=env)
    assert result.exit_code == 1
    for key in hostile:
        assert f"row '{key}': cannot decrypt docs.body" in result.stderr
    assert "\x1b]8;" not in result.stderr  # no OSC 8 hyperlink escape


def test_restore_type_with_sql_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """decrypt-column --restore-type "TEXT; DROP TABLE x; --": refused; no value decrypted, x still there."""
    env = _keys_cli(tmp_path)
    engine = sa.create_engine("sqlite:///keys.db")
    keyring = fieldcrypt.Keyring(
        "pii", fieldcrypt.LocalMasterKey.from_file(tmp_path / "master.key"), fieldcrypt.SqlKeyStore(engine)
    )
    keyring.key_store.create_table()  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE x (id INTEGER)"))
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, ssn BLOB)"))
        blob = keyring.encrypt("123-45-6789", fieldcrypt.Place("users", "ssn"))
        conn.execute(sa.text("INSERT INTO users VALUES (1, :b)"), {"b": blob})
    result = invoke("decrypt-column", "users.ssn", "--restore-type", "TEXT; DROP TABLE x; --", env=env)
    assert result.exit_code == 3
    assert "DROP" not in result.stderr  # the refused text is not echoed either
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM x")).scalar() == 0  # still there
        assert conn.execute(sa.text("SELECT ssn FROM users")).scalar() == blob  # not decrypted
    assert (
        "--restore-type 'SERIAL' is not a type"
        in invoke("decrypt-column", "users.ssn", "--restore-type", "serial", env=env).stderr
    )
