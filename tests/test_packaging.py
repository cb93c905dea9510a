"""Each extra, installed alone from the built wheel into a fresh venv, runs its documented entry point."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import fieldcrypt

ROOT = Path(__file__).resolve().parents[1]
# What each extra is documented to serve (README "Install in an application", docs/*.md).
ROUND_TRIP = (
    "import fieldcrypt\n"
    "k = fieldcrypt.Keyring('pii', fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())\n"
    "p = fieldcrypt.Place('users', 'ssn')\n"
    "assert k.decrypt(k.encrypt(b'123-45-6789', p), p) == b'123-45-6789'\n"
)
NO_CLICK = "import importlib.util\nassert importlib.util.find_spec('click') is None, 'click was installed'\n"
ENTRY_POINTS = {
    "": ROUND_TRIP,
    "kms": "import fieldcrypt\n"
    "key = fieldcrypt.KmsMasterKey('arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd', region='us-west-2')\n"
    "assert key.key_id.startswith('arn:aws:kms:us-west-2:')\n",
    "sqlalchemy": "import runpy, sys\n"
    f"sys.argv = ['quickstart.py']\nrunpy.run_path({str(ROOT / 'examples' / 'quickstart.py')!r}, run_name='__main__')\n",
    "asyncio": "import greenlet, sqlalchemy.ext.asyncio, fieldcrypt.sqlalchemy\n"
    "from fieldcrypt.sqlalchemy import warm_up\n",
    "alembic": NO_CLICK + "import fieldcrypt.alembic\nfrom fieldcrypt.config import build_keyring, load\n"
    "assert load().keyring == 'pii'\n",
    "dynamodb": "from fieldcrypt.pynamodb import EncryptedAttribute, EncryptedModel\n",
    # The API alone (no SDK): metrics are on, nothing records, the round trip is untouched.
    "otel": ROUND_TRIP + "from fieldcrypt import metrics\nassert metrics._otel() is not None\n"
    "assert 'encrypt' not in vars(k), 'a keyring was wrapped although nothing records'\n",
}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once per session from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)]
    subprocess.run(pip, check=True, capture_output=True)
    (built,) = out.glob("fieldcrypt-*.whl")
    return built


_venvs: dict[str, Path] = {}


def venv_with(extra: str, wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv holding the wheel with only ``extra`` (one venv per extra)."""
    if extra not in _venvs:
        home = tmp_path_factory.mktemp(f"venv-{extra or 'core'}")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
        # The running pip installs into the new venv (--python): no pip bootstrap per venv.
        requirement = f"fieldcrypt[{extra}] @ {wheel.as_uri()}" if extra else str(wheel)
        install = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(home / "bin" / "python"),
            "install",
            "--quiet",
        ]
        subprocess.run([*install, requirement], check=True, capture_output=True)
        _venvs[extra] = home / "bin"
    return _venvs[extra]


@pytest.mark.packaging
@pytest.mark.parametrize("extra", ENTRY_POINTS, ids=lambda e: e or "core")
def test_each_extra_alone_runs_its_entry_point(
    extra: str, wheel: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """pip install 'fieldcrypt[<extra>]' alone is enough for what the docs do with that extra."""
    python = venv_with(extra, wheel, tmp_path_factory) / "python"
    done = subprocess.run(
        [str(python), "-c", ENTRY_POINTS[extra]], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.packaging
def test_cli_extra_alone_prints_the_package_version(
    wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With fieldcrypt[cli] alone, `fieldcrypt --version` prints the installed package's version."""
    bin_dir = venv_with("cli", wheel, tmp_path_factory)
    done = subprocess.run(
        [str(bin_dir / "fieldcrypt"), "--version"], capture_output=True, text=True, check=True
    )
    installed = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "from importlib import metadata; print(metadata.version('fieldcrypt'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == f"fieldcrypt, version {installed.stdout.strip()}\n"
    assert installed.stdout.strip() == fieldcrypt.__version__


@pytest.mark.packaging
@pytest.mark.parametrize("extras", ["", "sqlalchemy,kms"], ids=["core", "sqlalchemy,kms"])
def test_script_without_the_cli_extra_says_what_to_install(
    extras: str, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Without click, the fieldcrypt script prints one line naming fieldcrypt[cli] and exits 2."""
    bin_dir = venv_with(extras, wheel, tmp_path_factory)
    done = subprocess.run([str(bin_dir / "fieldcrypt"), "--version"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "fieldcrypt: the command line needs the cli extra (click is not installed): "
        "pip install 'fieldcrypt[cli]'\n"
    )


def test_every_declared_extra_is_installed_alone_here() -> None:
    """The extras in pyproject.toml are exactly those tested alone above (plus cli), and `all` names each."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    tested = {e for e in ENTRY_POINTS if e} | {"cli"}
    assert set(declared) - {"all"} == tested
    assert declared["all"] == [f"fieldcrypt[{','.join(sorted(tested, key=list(declared).index))}]"]


def test_version_has_one_source() -> None:
    """The installed metadata, fieldcrypt.__version__ and `python -m fieldcrypt --version` agree."""
    done = subprocess.run(
        [sys.executable, "-m", "fieldcrypt", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"fieldcrypt, version {fieldcrypt.__version__}\n"
    assert metadata.version("fieldcrypt") == fieldcrypt.__version__
