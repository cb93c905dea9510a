"""status, reencrypt and verify of a per-subject column (``Encrypted(..., subject="user_id")``), on
SQLite, PostgreSQL and MariaDB: each row's value opened and sealed with its own subject's key, a
shredded subject's values counted apart (never failed, never named), every other subject moving on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import fieldcrypt
from fieldcrypt import rotation
from fieldcrypt.column import ColumnSpec
from fieldcrypt.sqlalchemy import Encrypted, Sealed, column_spec
from fieldcrypt.testing import local_keyring

metadata = sa.MetaData()
notes = sa.Table(
    "rot_subject_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.String(80), nullable=True),
    sa.Column("body", Encrypted(sa.String(200), keyring="pii", subject="user_id")),
)
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
# Rows 1-3 were written before the column was per subject (under the keyring's shared data key);
# rows 11-13 since, each under its subject's own key.
SHARED = {1: ALICE, 2: BOB, 3: CAROL}
OWN = {11: ALICE, 12: BOB, 13: CAROL}


@pytest.fixture
def keyring() -> fieldcrypt.Keyring:
    """Keyring "pii", its subject keys in a store of their own (the rate-limited run must find them there)."""
    return local_keyring("pii", subject_key_store=fieldcrypt.MemoryKeyStore())


@pytest.fixture
def table(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> Iterator[sa.Engine]:
    """The notes table with three subjects' rows: one each under the shared key, one each under their own key."""
    metadata.create_all(engine)
    before = ColumnSpec("rot_subject_notes", "body", keyring="pii", codec="text")  # not yet per subject
    rows = [{"id": i, "user_id": u, "body": Sealed(before.encrypt(f"note {i}"))} for i, u in SHARED.items()]
    with engine.begin() as conn:
        conn.execute(notes.insert(), rows)
        conn.execute(notes.insert(), [{"id": i, "user_id": u, "body": f"note {i}"} for i, u in OWN.items()])
    yield engine
    metadata.drop_all(engine)


def _raw(engine: sa.Engine) -> dict[int, bytes]:
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT id, body FROM rot_subject_notes")).all()
    return {i: bytes(b) for i, b in found}


def _spec() -> ColumnSpec:
    return column_spec("rot_subject_notes", "body", metadata)


def test_raw_values_are_ciphertext_under_three_kinds_of_key(
    table: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Stored bytes are v1 ciphertext without the plaintext; the shared rows name one data key, each subject's row its own."""
    raw = _raw(table)
    for i, blob in raw.items():
        assert blob[0] == fieldcrypt.format.VERSION_1
        assert f"note {i}".encode() not in blob
    assert len({keyring.key_id_of(raw[i]) for i in SHARED}) == 1
    assert len({keyring.key_id_of(raw[i]) for i in OWN} | {keyring.key_id_of(raw[1])}) == 4


def test_status_counts_each_kind_and_a_shredded_subject_apart(
    table: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """After shredding bob: 2 values under live subjects' keys, 1 of a shredded subject (listed by row), 3 still under the shared key."""
    keyring.shred_subject(BOB)
    found = rotation.status(table, _spec())
    assert (found.per_subject, found.current_key) == (True, None)
    assert (found.subject_keyed, found.shredded_subject, found.shredded_rows) == (2, 1, ["12"])
    assert (found.encrypted, found.not_current, found.unknown_key, found.destroyed) == (6, 3, 0, 0)
    assert found.work_remains  # the shared-key values have still to move
    assert BOB not in repr(found.as_dict())


def test_reencrypt_moves_shared_values_to_subject_keys_and_skips_a_shredded_subject(
    table: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """reencrypt after bob's shred: alice's and carol's shared-key rows move to their own keys, bob's is skipped and counted, nothing fails; a rerun does nothing."""
    keyring.shred_subject(BOB)
    before = _raw(table)
    report = rotation.reencrypt_column(table, _spec(), max_kms_calls_per_second=1000)
    assert (report.written, report.shredded, report.failed, report.complete) == (2, 1, 0, True)
    after = _raw(table)
    assert sorted(i for i in after if after[i] != before[i]) == [1, 3]
    for i in (1, 3):
        assert after[i][0] == fieldcrypt.format.VERSION_1
        assert f"note {i}".encode() not in after[i]
        assert after[i][:21] == after[i + 10][:21]  # the subject's own key, as its other row
    with Session(table) as session:
        bodies = dict(
            session.execute(sa.select(notes.c.id, notes.c.body).where(notes.c.id.in_([1, 3]))).all()
        )
    assert {
        i: keyring.decrypt_for_subject(SHARED[i], b.blob, _spec().place()) for i, b in bodies.items()
    } == {
        1: b"note 1",
        3: b"note 3",
    }
    again = rotation.reencrypt_column(table, _spec())
    assert (again.written, again.shredded, again.failed) == (0, 1, 0)
    status = rotation.status(table, _spec())
    assert (status.subject_keyed, status.shredded_subject, status.not_current) == (4, 1, 1)


def test_a_dry_run_makes_no_subject_key(table: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """reencrypt --dry-run after carol's shred counts 3 shared values to move and 1 shredded, and makes no key for dave (a subject with no key yet)."""
    dave = "dave@example.com"
    before = ColumnSpec("rot_subject_notes", "body", keyring="pii", codec="text")
    with table.begin() as conn:
        conn.execute(notes.insert(), [{"id": 4, "user_id": dave, "body": Sealed(before.encrypt("note 4"))}])
    keyring.shred_subject(CAROL)
    report = rotation.reencrypt_column(table, _spec(), dry_run=True)
    assert (report.to_change, report.shredded, report.written) == (3, 1, 0)
    assert keyring.subject_key_store.get(keyring.subject_tag(dave)) is None
    assert _raw(table)[4][:21] == _raw(table)[1][:21]  # still under the shared key


def test_verify_opens_each_row_with_its_subjects_key_and_reports_a_shredded_subject_apart(
    table: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """verify after bob's shred and a reencrypt: 4 rows decrypt, bob's own-key row counts as shredded, his shared-key row fails naming reencrypt."""
    keyring.shred_subject(BOB)
    rotation.reencrypt_column(table, _spec())
    checked = rotation.verify(table, _spec())
    assert (checked.decrypted, checked.shredded_subject, checked.shredded_rows) == (4, 1, ["12"])
    assert checked.failed == 1
    (failure,) = checked.failures
    assert failure[0] == "2"
    assert "reencrypt" in failure[1]
    assert BOB not in repr(checked.as_dict())


def test_a_value_moved_to_another_subjects_row_is_reported_by_verify(table: sa.Engine) -> None:
    """alice's own-key ciphertext copied into carol's row fails verify there; every other row still decrypts."""
    raw = _raw(table)
    with table.begin() as conn:
        conn.execute(notes.update().where(notes.c.id == 13).values(body=Sealed(raw[11])))
    rotation.reencrypt_column(table, _spec())
    checked = rotation.verify(table, _spec())
    assert (checked.decrypted, checked.failed, checked.shredded_subject) == (5, 1, 0)
    assert checked.failures[0][0] == "13"


def test_decrypt_column_lists_a_shredded_subjects_rows_as_failed(
    table: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """decrypt_column writes every live subject's plaintext and lists bob's erased row as failed (it cannot be given back)."""
    rotation.reencrypt_column(table, _spec())
    keyring.shred_subject(BOB)
    report = rotation.decrypt_column(table, _spec())
    assert (report.written, report.failed) == (4, 2)
    assert sorted(row for row, _ in report.failures) == ["12", "2"]
    with table.connect() as conn:
        plain = dict(conn.execute(sa.text("SELECT id, body FROM rot_subject_notes WHERE id = 11")).all())
    assert bytes(plain[11]) == b"note 11"


def test_a_per_subject_spec_needs_its_subject() -> None:
    """ColumnSpec(subject_column=...) refuses encrypt/decrypt without subject=, and a blind index."""
    spec = ColumnSpec("t", "c", keyring=local_keyring("pii"), codec="text", subject_column="user_id")
    with pytest.raises(fieldcrypt.ConfigurationError, match="user_id"):
        spec.encrypt("x")
    sealed = spec.encrypt("x", subject=ALICE)
    assert spec.decrypt(sealed, subject=ALICE) == "x"
    with pytest.raises(fieldcrypt.DecryptionError):
        spec.decrypt(sealed, subject=BOB)
    with pytest.raises(fieldcrypt.ConfigurationError, match="blind index"):
        ColumnSpec("t", "c", keyring="pii", subject_column="user_id", index_column="c_bidx")
