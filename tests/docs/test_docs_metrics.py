"""docs/production.md's OpenTelemetry set-up, run as written in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

from docs_blocks import ROOT, find

WORK = """
import fieldcrypt
keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
place = fieldcrypt.Place("users", "ssn")
assert keyring.decrypt(keyring.encrypt(b"123-45-6789", place), place) == b"123-45-6789"
reader.force_flush()
"""


def test_the_documented_setup_exports_fieldcrypts_metrics() -> None:
    """A global SDK provider set as documented exports fieldcrypt's values and cache metrics, without the value itself."""
    setup = find(ROOT / "docs" / "production.md", "set_meter_provider").code
    done = subprocess.run([sys.executable, "-c", setup + WORK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("fieldcrypt.values.encrypted", "fieldcrypt.values.decrypted", "fieldcrypt.cache.hits"):
        assert f'"name": "{name}"' in done.stdout
    assert '"keyring": "pii"' in done.stdout
    assert "123-45-6789" not in done.stdout
