"""`fieldcrypt encrypt --public-key FILE`: a write-only producer outside AWS; `rsa:ARN` readers decrypt."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import invoke
from cryptography.hazmat.primitives import serialization

import fieldcrypt
from fieldcrypt import format as fmt


@pytest.fixture
def rsa_key(aws_client: Callable[..., Any], tmp_path: Path) -> tuple[str, Path, Path]:
    """An RSA_4096 KMS key and its public key saved as PEM and as DER: (ARN, pem, der)."""
    kms = aws_client("kms", "us-east-1")
    arn = kms.create_key(KeySpec="RSA_4096", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    der = kms.get_public_key(KeyId=arn)["PublicKey"]
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "public.pem").write_bytes(pem)
    (tmp_path / "public.der").write_bytes(der)
    return arn, tmp_path / "public.pem", tmp_path / "public.der"


def test_encrypt_with_a_public_key_needs_no_aws_and_rsa_readers_decrypt(
    rsa_key: tuple[str, Path, Path], tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the public key (PEM or DER) and no reachable KMS, encrypt works; `--master-key rsa:ARN` decrypts."""
    arn, pem, der = rsa_key
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    fieldcrypt.SqlKeyStore(fieldcrypt.config.engine_for(os.environ["FIELDCRYPT_DATABASE_URL"])).create_table()
    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", "http://127.0.0.1:9")  # any KMS call would fail
    texts = []
    for public in (pem, der):
        done = invoke("--master-key", arn, "encrypt", "--public-key", str(public), "--value", "123-45-6789")
        assert done.exit_code == 0, done.stderr
        blob = base64.b64decode(done.stdout.strip(), validate=True)
        assert fmt.looks_like_ciphertext(blob)
        assert b"123-45-6789" not in blob
        texts.append(done.stdout)

    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", moto_endpoint)
    for text in texts:
        back = invoke("--master-key", f"rsa:{arn}", "decrypt", input=text)
        assert (back.exit_code, back.stdout) == (0, "123-45-6789"), back.stderr


def test_public_key_needs_the_keys_arn(
    rsa_key: tuple[str, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--public-key with a local master key configured, or with a file that is not a key: exit 3, clear message."""
    arn, pem, _ = rsa_key
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    local = invoke("--master-key", "file:master.key", "encrypt", "--public-key", str(pem), "--value", "x")
    assert local.exit_code == 3
    assert "--public-key needs --master-key set to the ARN of the RSA KMS key" in local.stderr
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    junk = invoke("--master-key", arn, "encrypt", "--public-key", str(tmp_path / "junk.pem"), "--value", "x")
    assert junk.exit_code == 3
    assert "is unusable: not a DER or PEM public key" in junk.stderr


def test_public_key_encrypt_as_a_subprocess_without_aws_credentials(
    rsa_key: tuple[str, Path, Path], tmp_path: Path
) -> None:
    """The installed script encrypts from stdin with no AWS variables at all (a producer outside AWS)."""
    arn, pem, _ = rsa_key
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    fieldcrypt.SqlKeyStore(fieldcrypt.config.engine_for(url)).create_table()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FIELDCRYPT_"))}
    env["FIELDCRYPT_DATABASE_URL"] = url
    script = Path(sys.executable).parent / "fieldcrypt"
    done = subprocess.run(
        [str(script), "--master-key", arn, "encrypt", "--public-key", str(pem), "-"],
        input=b"123-45-6789",
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert fmt.looks_like_ciphertext(base64.b64decode(done.stdout.strip(), validate=True))
