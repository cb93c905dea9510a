"""Run ``mypy --strict`` on a small source file, as a user's type checker would see it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mypy_strict(path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Write ``source`` to ``path`` and check it with the project's mypy (from the repository root)."""
    path.write_text(source)
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(path)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def assert_accepted(path: Path, source: str) -> None:
    """``source`` passes ``mypy --strict``."""
    result = mypy_strict(path, source)
    assert result.returncode == 0, result.stdout + result.stderr


def assert_rejected(path: Path, source: str, *, line: int, message: str) -> None:
    """``mypy --strict`` reports exactly one kind of error in ``source``: ``message`` at ``line``."""
    result = mypy_strict(path, source)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path.name}:{line}: error: {message}" in result.stdout, result.stdout
