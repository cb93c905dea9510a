"""The README's main-job command, examples/quickstart.py, runs on a fresh checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# Run the example with the libraries of the other extras made unimportable: it must work after
# `pip install -e '.[sqlalchemy]'` alone, and it must not need AWS.
LAUNCHER = (
    "import runpy, sys\n"
    "for name in ('boto3', 'botocore', 'alembic', 'pynamodb', 'click', 'rich'):\n"
    "    sys.modules[name] = None\n"
    "sys.argv[0] = 'examples/quickstart.py'\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_quickstart_shows_ciphertext_to_the_dba_and_plaintext_to_the_app() -> None:
    """It prints ciphertext for the DBA, plaintext for the app, and finds a user by SSN."""
    result = _run()
    assert result.returncode == 0, result.stderr
    dba, app = result.stdout.split("What the application reads:")
    assert "123-45-6789" not in dba
    assert "1815-12-10" not in dba
    assert "| 01 " in dba  # format v1 values
    assert "1 | Ada Lovelace | 123-45-6789 | 1815-12-10" in app
    assert 'Search by SSN "987 65 4321" (blind index): Alan Turing' in result.stdout
    assert "users.ssn is encrypted: like cannot work on ciphertext" in result.stdout


def test_quickstart_keeps_its_key_and_database_in_a_directory(tmp_path: Path) -> None:
    """With --dir it writes master.key (owner-only) and app.db, and a second run reuses them."""
    first = _run("--dir", str(tmp_path / "qs"))
    second = _run("--dir", str(tmp_path / "qs"))
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    key_file = tmp_path / "qs" / "master.key"
    assert key_file.stat().st_mode & 0o077 == 0
    assert (tmp_path / "qs" / "app.db").exists()
    assert "Alan Turing" in second.stdout
