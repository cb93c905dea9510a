"""Helpers for the CLI tests."""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from click.testing import CliRunner, Result

from fieldcrypt.cli import cli

# click 8.2 always keeps stderr apart (and dropped the option); 8.1 mixes it in unless told not to.
_RUNNER_OPTIONS: dict[str, Any] = (
    {} if tuple(map(int, metadata.version("click").split(".")[:2])) >= (8, 2) else {"mix_stderr": False}
)


def invoke(*args: str, json_output: bool = False, input: bytes | str | None = None) -> Result:
    """Run the CLI in-process; stdout and stderr are kept apart."""
    arguments = (["--json"] if json_output else []) + list(args)
    return CliRunner(**_RUNNER_OPTIONS).invoke(cli, arguments, input=input, catch_exceptions=False)


def payload(result: Result) -> Any:
    return json.loads(result.stdout)
