"""`keys shred --subject` and `keys rekey-subjects` through the CLI, against the SQL databases."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result

import fieldcrypt
from fieldcrypt.format import VERSION_1
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


SUBJECT_MODELS = """
import sqlalchemy as sa
from fieldcrypt.sqlalchemy import Encrypted

metadata = sa.MetaData()
notes = sa.Table(
    "cli_subject_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.String(80)),
    sa.Column("body", Encrypted(sa.String(200), keyring="pii", subject="user_id")),
)
"""
PEOPLE = ["ann@example.com", "ben@example.com", "cy@example.com"]


@pytest.fixture
def subject_notes(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A models module with a per-subject column, its table holding two rows per person, each under that person's key."""
    (tmp_path / "fc_cli_subjects.py").write_text(SUBJECT_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fc_cli_subjects", raising=False)
    import fc_cli_subjects

    fieldcrypt.register(keyring)
    fc_cli_subjects.metadata.create_all(engine)
    rows = [
        {"id": n * 2 + i, "user_id": p, "body": f"{p} {i}"} for n, p in enumerate(PEOPLE) for i in range(2)
    ]
    with engine.begin() as conn:
        conn.execute(fc_cli_subjects.notes.insert(), rows)
    fieldcrypt.registry.unregister("pii")  # the CLI registers its own
    yield fc_cli_subjects
    fc_cli_subjects.metadata.drop_all(engine)
    sys.modules.pop("fc_cli_subjects", None)


def test_status_reencrypt_and_verify_after_keys_shred_subject(
    engine: sa.Engine, run: Callable[..., Result], subject_notes: Any
) -> None:
    """After keys shred --subject ben: status and verify count ben's 2 rows as shredded (exit 0), reencrypt completes; no output names ben."""
    with engine.connect() as conn:
        stored = [bytes(b) for (b,) in conn.execute(sa.text("SELECT body FROM cli_subject_notes"))]
    assert all(b[0] == VERSION_1 and b"example.com" not in b for b in stored)
    assert run("keys", "shred", "--subject", PEOPLE[1], "--yes").exit_code == 0
    models = ("--metadata", "fc_cli_subjects:metadata")
    outputs = []
    for command in ("status", "reencrypt", "verify"):
        human = run(*models, command, "cli_subject_notes.body")
        assert human.exit_code == 0, human.stderr
        done = run(*models, command, "cli_subject_notes.body", json_output=True)
        assert done.exit_code == 0, done.stderr
        outputs += [human.stdout, human.stderr, done.stdout, done.stderr]
        if command == "status":
            found = payload(done)
            assert (found["subject_keyed"], found["shredded_subject"], found["shredded_rows"]) == (
                4,
                2,
                ["2", "3"],
            )
        elif command == "reencrypt":
            assert (payload(done)["written"], payload(done)["failed"]) == (0, 0)
        else:
            checked = payload(done)
            assert (checked["decrypted"], checked["shredded_subject"], checked["failed"]) == (4, 2, 0)
    assert "shredded" in outputs[0] + outputs[1]  # the human summary says so
    assert not any(PEOPLE[1] in text for text in outputs)


def test_verify_lists_a_value_moved_to_another_subjects_row(
    engine: sa.Engine, run: Callable[..., Result], subject_notes: Any
) -> None:
    """ann's ciphertext copied into cy's row: verify exits 1 listing that row, the others decrypt."""
    with engine.begin() as conn:
        (ann,) = conn.execute(sa.text("SELECT body FROM cli_subject_notes WHERE id = 0")).one()
        conn.execute(sa.text("UPDATE cli_subject_notes SET body = :b WHERE id = 4"), {"b": bytes(ann)})
    done = run("--metadata", "fc_cli_subjects:metadata", "verify", "cli_subject_notes.body", json_output=True)
    assert done.exit_code == 1
    checked = payload(done)
    assert (checked["decrypted"], checked["failed"], [f["row"] for f in checked["failures"]]) == (5, 1, ["4"])
