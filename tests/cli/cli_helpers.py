"""Helpers for the CLI tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
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


def kill_9_mid_run(
    arguments: list[str], env: dict[str, str], checkpoints: Path, *, stderr_log: Path | None = None
) -> None:
    """Run the ``fieldcrypt`` console script and SIGKILL it once a checkpoint exists and some
    more batches have committed (a crash between commits, as an operator's job would meet it).
    With ``stderr_log`` its stderr (progress lines included) is kept there; else it runs -q."""
    command = [
        str(Path(sys.executable).parent / "fieldcrypt"),
        *([] if stderr_log else ["-q"]),
        *arguments,
        "--checkpoint-dir",
        str(checkpoints),
    ]
    log = stderr_log.open("w") if stderr_log else None
    process = subprocess.Popen(command, env=env, stderr=log)
    deadline = time.monotonic() + 120
    while not any(checkpoints.glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    time.sleep(0.1)  # some more batches
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    if log is not None:
        log.close()
