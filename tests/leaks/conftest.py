"""Fixtures for the leak tests: every logger at DEBUG, captured; secrets to scan for."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from leak_scanner import Capture, Secrets

import fieldcrypt

MASTER = bytes(range(1, 33))  # the local master key of these tests, so it can be scanned for


@pytest.fixture
def debug_logs() -> Iterator[Capture]:
    """Root and every existing logger at DEBUG; every record captured."""
    root = logging.getLogger()
    capture = Capture()
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    old_root = root.level
    for name in levels:
        logging.getLogger(name).setLevel(logging.NOTSET)  # inherit DEBUG from the root
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(old_root)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def secrets() -> Secrets:
    """The scanner, already holding the tests' local master key."""
    return Secrets().key(MASTER, "local master key")


@pytest.fixture
def master_key() -> fieldcrypt.LocalMasterKey:
    return fieldcrypt.LocalMasterKey(MASTER)


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [v for v in os.environ if v.startswith("FIELDCRYPT_") and v != "FIELDCRYPT_TEST_DB"]:
        monkeypatch.delenv(variable)
