"""SQLAlchemy's own logging around encrypted columns: parameters are ciphertext at INFO; row
logging (DEBUG) would show decrypted values, so fieldcrypt warns once per engine."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from leak_models import NOTE, PLAINTEXTS, SSN, Base, Person
from leak_scanner import Secrets
from sqlalchemy.orm import Session

import fieldcrypt

WARNING = "logs result rows at DEBUG"


def _write_and_read(engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Person(id=1, name="a", ssn=SSN, note=NOTE))
        session.commit()
    for _ in range(3):
        with Session(engine) as session:
            assert session.get(Person, 1) is not None


def test_echo_debug_engine_is_warned_about_once(
    tmp_path: Path, master_key: fieldcrypt.LocalMasterKey, caplog: pytest.LogCaptureFixture
) -> None:
    """echo="debug" on an engine with encrypted columns: one warning, naming the engine without password."""
    fieldcrypt.register(fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore()))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}", echo="debug")
    with caplog.at_level(logging.WARNING, logger="fieldcrypt"):
        _write_and_read(engine)
    warnings = [r for r in caplog.records if r.name == "fieldcrypt" and WARNING in r.getMessage()]
    assert len(warnings) == 1
    assert "a.db" in warnings[0].getMessage()


def test_echo_true_logs_only_ciphertext_and_is_not_warned_about(
    tmp_path: Path, master_key: fieldcrypt.LocalMasterKey, secrets: Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    """echo=True (INFO) logs statement parameters after encryption: no plaintext, no key, no warning."""
    keyring = fieldcrypt.register(fieldcrypt.Keyring("pii", master_key, fieldcrypt.MemoryKeyStore()))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'b.db'}", echo=True)
    with caplog.at_level(logging.INFO):
        _write_and_read(engine)
    assert any("INSERT INTO leak_people" in r.getMessage() for r in caplog.records)
    assert not any(WARNING in r.getMessage() for r in caplog.records)
    secrets.plaintext(*PLAINTEXTS).keyring(keyring).assert_records_clean(caplog.records)
