"""Per-tenant fixtures: three tenants, two sharing a KMS key and one (globex) on its own (BYOK)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tenant_models import Member

import fieldcrypt
from ddb_shapes import on_moto
from fieldcrypt.keys.master import MasterKey

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tenant_app, for the CLI's --tenant-keyrings

from tenant_helpers import BYOK


@pytest.fixture
def kms_keys(aws_client: Callable[..., Any]) -> dict[str, str]:
    """KMS key ARNs: "shared" (acme, initech), "globex" (the BYOK tenant's own), "globex-next"."""
    kms = aws_client("kms", "us-east-1")
    return {
        name: kms.create_key(Description=name)["KeyMetadata"]["Arn"]
        for name in ("shared", "globex", "globex-next")
    }


@pytest.fixture
def kms_clients(aws_client: Callable[..., Any]) -> dict[str, Any]:
    """One KMS client per master key, so a test can make one tenant's key fail alone."""
    return {name: aws_client("kms", "us-east-1") for name in ("shared", "globex", "globex-next")}


@pytest.fixture
def master_keys(kms_keys: dict[str, str], kms_clients: dict[str, Any]) -> dict[str, MasterKey]:
    """Each tenant's master key (the application's mapping)."""
    shared = fieldcrypt.KmsMasterKey(kms_keys["shared"], client=kms_clients["shared"])
    own = fieldcrypt.KmsMasterKey(kms_keys["globex"], client=kms_clients["globex"])
    return {"acme": shared, "initech": shared, BYOK: own}


@pytest.fixture
def key_store() -> fieldcrypt.MemoryKeyStore:
    """One key store shared by every tenant (each tenant's records under its own keyring name)."""
    return fieldcrypt.MemoryKeyStore()


@pytest.fixture
def tenant_keyrings(
    key_store: fieldcrypt.MemoryKeyStore, master_keys: dict[str, MasterKey]
) -> fieldcrypt.TenantKeyrings:
    """TenantKeyrings "tenant-pii", registered, resolving tenants through ``master_keys``."""
    return fieldcrypt.register(
        fieldcrypt.TenantKeyrings("tenant-pii", key_store=key_store, master_key_for=master_keys.__getitem__)
    )


@pytest.fixture
def members(moto_endpoint: str, tenant_keyrings: fieldcrypt.TenantKeyrings) -> Iterator[type[Member]]:
    """The members table on moto, empty, deleted afterwards."""
    with on_moto(moto_endpoint, Member):
        yield Member


@pytest.fixture
def tenant_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tenant_app's configuration: key files per tenant (globex has its own), a SQLite key store."""
    directory = tmp_path / "tenants"
    directory.mkdir()
    for name in ("shared", "globex", "globex-next"):
        fieldcrypt.LocalMasterKey.write_new(directory / f"{name}.key")
    mapping = {"*": f"file:{directory / 'shared.key'}", BYOK: f"file:{directory / 'globex.key'}"}
    (directory / "tenants.json").write_text(json.dumps(mapping))
    monkeypatch.setenv("FC_TENANT_DIR", str(directory))
    monkeypatch.setenv("FC_TENANT_KEY_STORE", f"sqlite:///{directory / 'keys.db'}")
    return directory


@pytest.fixture
def ddb(aws_client: Callable[..., Any]) -> Any:
    """A low-level DynamoDB client for moto in us-east-1 (raw reads and writes)."""
    return aws_client("dynamodb", "us-east-1")


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean operator shell: its own directory, no FIELDCRYPT_* settings inherited."""
    from fieldcrypt import config as cli_config

    monkeypatch.chdir(tmp_path)
    for variable in (*cli_config.ENV.values(), "FIELDCRYPT_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    cli_config._engines.clear()
