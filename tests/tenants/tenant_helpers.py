"""Constants and helpers of the per-tenant tests (a module of its own: ``conftest`` is ambiguous
when several test folders run together)."""

from __future__ import annotations

import json
from typing import Any

import fieldcrypt

TENANTS = ("acme", "globex", "initech")
BYOK = "globex"  # the tenant on its own KMS key


def invoke(*args: str) -> Any:
    """Run ``fieldcrypt --json ARGS`` in-process (stdout and stderr kept apart)."""
    from cli_runner import cli_runner
    from fieldcrypt.cli import cli

    return cli_runner().invoke(cli, ["--json", *args], catch_exceptions=False)


def payload(result: Any) -> Any:
    """The JSON a --json command printed on stdout."""
    return json.loads(result.stdout)


def wraps_by_keyring(store: Any, keyrings: dict[str, fieldcrypt.Keyring]) -> dict[str, dict[str, Any]]:
    """Every data-key record of each tenant's keyring: key id -> (revision, master keys wrapping it)."""
    return {
        tenant: {r.key_id: (r.revision, sorted(r.wraps)) for r in store.list(keyring.name)}
        for tenant, keyring in keyrings.items()
    }
