"""Helpers for the CLI tests."""

from __future__ import annotations

import json
from typing import Any

from click.testing import Result

from cli_runner import cli_runner
from fieldcrypt.cli import cli


def invoke(*args: str, json_output: bool = False, input: bytes | str | None = None) -> Result:
    """Run the CLI in-process; stdout and stderr are kept apart."""
    arguments = (["--json"] if json_output else []) + list(args)
    return cli_runner().invoke(cli, arguments, input=input, catch_exceptions=False)


def payload(result: Result) -> Any:
    return json.loads(result.stdout)
