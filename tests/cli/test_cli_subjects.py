"""`keys shred --subject` and `keys rekey-subjects` through the CLI, against the SQL databases."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result

import fieldcrypt
from fieldcrypt.keys.record import Status

SSN = fieldcrypt.Place("users", "ssn")


def test_keys_shred_subject_erases_one_subject(
    engine: sa.Engine,
    run: Callable[..., Result],
    keyring: fieldcrypt.Keyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """keys shred --keyring pii --subject 42: subject 42's values raise KeyDestroyedError, 43's read; audit line, no id."""
    mine = keyring.encrypt_for_subject(42, "123-45-6789", SSN)
    theirs = keyring.encrypt_for_subject(43, "987-65-4321", SSN)
    refused = run("keys", "shred", "--keyring", "pii", "--subject", "42")
    assert refused.exit_code != 0
    assert "--yes" in refused.stderr
    with caplog.at_level(logging.INFO, logger="fieldcrypt.audit"):
        done = run("keys", "shred", "--keyring", "pii", "--subject", "42", "--yes", json_output=True)
    assert done.exit_code == 0, done.stderr
    result = payload(done)
    assert (result["had_key"], result["already_shredded"]) == (True, False)
    assert result["subject_tag"] == keyring.subject_tag(42)
    record = keyring.subject_key_store.get(result["subject_tag"])
    assert record is not None
    assert record.status is Status.DESTROYED
    (line,) = [r.getMessage() for r in caplog.records if "subject_key.shredded" in r.getMessage()]
    assert result["subject_tag"] in line
    assert "42" not in line.replace(result["subject_tag"], "")
    reader = fieldcrypt.Keyring("pii", keyring.master_key, keyring.key_store)
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        reader.decrypt_for_subject(42, mine, SSN)
    assert reader.decrypt_for_subject(43, theirs, SSN) == b"987-65-4321"


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_keys_rekey_subjects_then_finish(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """keys rekey-subjects moves live subject keys to a new wrapping key; --finish later destroys the old one."""
    value = keyring.encrypt_for_subject("bob", "b", SSN)
    first = run("keys", "rekey-subjects", json_output=True)
    assert first.exit_code == 0, first.stderr
    assert (payload(first)["rewrapped"], len(payload(first)["pending"])) == (1, 1)
    early = payload(run("keys", "rekey-subjects", "--finish", json_output=True))
    assert early["destroyed"] == []  # refresh_every (a minute) has not passed: nothing destroyed yet
    assert (
        fieldcrypt.Keyring("pii", keyring.master_key, keyring.key_store).decrypt_for_subject(
            "bob", value, SSN
        )
        == b"b"
    )


def test_keys_shred_needs_a_key_or_a_subject(run: Callable[..., Result], keyring: fieldcrypt.Keyring) -> None:
    """keys shred with neither (or both) KEY_ID and --subject is a usage error; a data key still needs --to."""
    assert run("keys", "shred", "--yes").exit_code == 2
    assert run("keys", "shred", "abcdef12", "--subject", "1", "--yes").exit_code == 2
    without_to = run("keys", "shred", "abcdef12", "--yes")
    assert without_to.exit_code == 2
    assert "--to" in without_to.stderr
