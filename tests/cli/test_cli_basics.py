"""CLI basics: init, encrypt/decrypt of values and files, configuration precedence, exit codes."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import invoke, payload

import fieldcrypt
from fieldcrypt import format as fmt


def test_init_writes_key_config_and_key_store(tmp_path: Path) -> None:
    """init: a 0600 key file, fieldcrypt.toml, the key store and a first data key; never twice."""
    result = invoke("init", json_output=True)
    assert result.exit_code == 0, result.stderr
    out = payload(result)
    key_file = tmp_path / ".fieldcrypt" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert out["master_key_id"] == fieldcrypt.LocalMasterKey.from_file(key_file).key_id
    assert key_file.read_text().strip() not in result.stdout + result.stderr  # the key is never printed
    assert (
        (tmp_path / "fieldcrypt.toml")
        .read_text()
        .startswith('[fieldcrypt]\ndatabase_url = "sqlite:///fieldcrypt.db"')
    )
    listed = invoke("keys", "list", json_output=True)  # configured by fieldcrypt.toml alone
    assert [k["key_id"] for k in payload(listed)["keys"]] == [out["data_key_id"]]
    again = invoke("init")
    assert again.exit_code == 3
    assert "already exists; refusing to overwrite a master key" in again.stderr


def test_encrypt_and_decrypt_values_and_files(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """encrypt prints base64 of a v1 value (like aws kms encrypt --output text); decrypt reverses it."""
    monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", f"file:{key_file}")
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    fieldcrypt.SqlKeyStore(fieldcrypt.config.engine_for(os.environ["FIELDCRYPT_DATABASE_URL"])).create_table()
    text = invoke("encrypt", "--value", "123-45-6789", "--place", "users.ssn")
    assert text.exit_code == 0, text.stderr
    blob = base64.b64decode(text.stdout.strip(), validate=True)
    assert fmt.looks_like_ciphertext(blob)
    assert b"123-45-6789" not in blob
    back = invoke("decrypt", "--place", "users.ssn", input=text.stdout)
    assert (back.exit_code, back.stdout) == (0, "123-45-6789")
    wrong = invoke("decrypt", "--place", "users.tax_id", input=text.stdout)
    assert wrong.exit_code == 5
    assert "cannot decrypt users.tax_id" in wrong.stderr

    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 4)
    raw_out = invoke("encrypt", str(secret), "--output", "binary")
    (tmp_path / "secret.fc").write_bytes(raw_out.stdout_bytes)
    restored = invoke("decrypt", str(tmp_path / "secret.fc"), "--out", str(tmp_path / "restored.bin"))
    assert restored.exit_code == 0
    assert (tmp_path / "restored.bin").read_bytes() == secret.read_bytes()


def test_configuration_precedence_flags_env_file(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flag beats an environment variable, which beats the config file."""
    (tmp_path / "fieldcrypt.toml").write_text('[fieldcrypt]\nkeyring = "from-file"\nregion = "eu-west-1"\n')
    from fieldcrypt import config

    assert (config.load().keyring, config.load().region) == ("from-file", "eu-west-1")
    monkeypatch.setenv("FIELDCRYPT_KEYRING", "from-env")
    assert config.load().keyring == "from-env"
    assert config.load(keyring="from-flag").keyring == "from-flag"
    (tmp_path / "bad.toml").write_text('[fieldcrypt]\nmaster_kee = "x"\n')
    bad = invoke("--config", str(tmp_path / "bad.toml"), "keys", "list")
    assert bad.exit_code == 3
    assert "unknown settings in the config file: master_kee" in bad.stderr


def test_exit_codes_for_configuration_and_kms_errors(
    tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No master key -> 3 with what to set; a KMS key that does not exist -> 4 naming the key."""
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    missing = invoke("keys", "list", json_output=True)
    assert missing.exit_code == 3
    assert payload(missing)["error"].startswith("no master key configured: pass --master-key")
    arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", moto_endpoint)
    fieldcrypt.SqlKeyStore(fieldcrypt.config.engine_for(os.environ["FIELDCRYPT_DATABASE_URL"])).create_table()
    denied = invoke("--master-key", arn, "encrypt", "--value", "x")
    assert denied.exit_code == 4
    assert f"with {arn} failed (NotFoundException)" in denied.stderr


def test_console_script_runs(tmp_path: Path, key_file: Any) -> None:
    """The installed `fieldcrypt` console script runs and reports JSON on stdout."""
    script = Path(sys.executable).parent / "fieldcrypt"
    env = {
        **os.environ,
        "FIELDCRYPT_MASTER_KEY_URI": f"file:{key_file}",
        "FIELDCRYPT_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
    }
    fieldcrypt.SqlKeyStore(fieldcrypt.config.engine_for(env["FIELDCRYPT_DATABASE_URL"])).create_table()
    done = subprocess.run(
        [str(script), "--json", "keys", "rotate"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert '"status": "active"' in done.stdout
