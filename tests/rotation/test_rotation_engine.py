"""The batch engine on SQLite, PostgreSQL and MariaDB: adoption, re-encryption, decryption."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from rotation_helpers import encrypted_rows, raw, ssn

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.rotation import ColumnSpec, decrypt_column, encrypt_column, reencrypt_column, schema, status
from fieldcrypt.rotation.spec import Storage


def test_encrypt_column_in_place_binary(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """Plaintext SSNs become v1 ciphertext in the same column; NULL stays NULL; rerun writes nothing."""
    users(rows=[(i, ssn(i)) for i in range(1, 26)] + [(26, None)])
    with engine.begin() as conn:
        original = schema.widen(conn, "users", "ssn", Storage.BINARY)
    assert isinstance(original, sa.String)
    assert original.length == 11
    report = encrypt_column(engine, spec, batch_size=7)
    assert (report.written, report.failed, report.batches) == (25, 0, 4)
    stored = raw(engine)
    assert stored[26] is None
    for i in range(1, 26):
        blob = stored[i]
        assert isinstance(blob, bytes)
        assert fmt.looks_like_ciphertext(blob)
        assert ssn(i).encode() not in blob
        assert keyring.decrypt(blob, fieldcrypt.Place("users", "ssn")) == ssn(i).encode()
    assert encrypt_column(engine, spec, batch_size=7).written == 0


def test_encrypt_then_decrypt_column_restores_type_and_values(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """decrypt_column plus narrow() gives back the plaintext values and the VARCHAR(11) type."""
    users(rows=[(i, ssn(i)) for i in range(1, 11)])
    with engine.begin() as conn:
        original = schema.widen(conn, "users", "ssn", Storage.BINARY)
    encrypt_column(engine, spec)
    report = decrypt_column(engine, spec, batch_size=3)
    assert report.written == 10
    with engine.begin() as conn:
        schema.narrow(conn, "users", "ssn", original, Storage.BINARY)
    stored = raw(engine)
    assert {k: (v.decode() if isinstance(v, bytes) else v) for k, v in stored.items()} == {
        i: ssn(i) for i in range(1, 11)
    }
    if engine.dialect.name != "sqlite":
        assert isinstance(stored[1], str)
        with engine.connect() as conn:
            kind = schema.column_info(conn, "users", "ssn")["type"]
        assert isinstance(kind, sa.String)
        assert kind.length == 11


def test_text_storage_widens_varchar_and_stores_base64(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any
) -> None:
    """Text storage keeps a character column, widened, holding base64 of the v1 bytes."""
    users(rows=[(i, ssn(i)) for i in range(1, 6)])
    text_spec = ColumnSpec("users", "ssn", keyring="pii", codec="text", storage="text")
    with engine.begin() as conn:
        schema.widen(conn, "users", "ssn", Storage.TEXT)
    assert encrypt_column(engine, text_spec).written == 5
    for i, value in raw(engine).items():
        assert isinstance(value, str)
        assert len(fmt.from_text(value)) == 11 + fmt.OVERHEAD
        assert keyring.decrypt(fmt.from_text(value), fieldcrypt.Place("users", "ssn")) == ssn(i).encode()


def test_integer_column_adopted_with_int_codec(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any
) -> None:
    """An INTEGER column is widened to binary and its values encrypted with the int codec."""
    users(rows=[(1, 42), (2, -7), (3, 0)], ssn_type=sa.Integer)
    int_spec = ColumnSpec("users", "ssn", keyring="pii", codec="int")
    with engine.begin() as conn:
        original = schema.widen(conn, "users", "ssn", Storage.BINARY)
    assert encrypt_column(engine, int_spec).written == 3
    place = fieldcrypt.Place("users", "ssn")
    assert {i: int(keyring.decrypt(v, place)) for i, v in raw(engine).items()} == {1: 42, 2: -7, 3: 0}
    decrypt_column(engine, int_spec)
    with engine.begin() as conn:
        schema.narrow(conn, "users", "ssn", original, Storage.BINARY)
    assert {i: int(v) for i, v in raw(engine).items()} == {1: 42, 2: -7, 3: 0}


def test_reencrypt_moves_every_value_to_the_current_key(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """After a rotation, reencrypt leaves no value on the old key; a rerun reads but writes nothing."""
    users(rows=encrypted_rows(keyring, 30), ssn_type=sa.LargeBinary)
    old = keyring.current_key_id()
    new = keyring.rotate().key_id
    report = reencrypt_column(engine, spec, batch_size=8)
    assert (report.written, report.failed, report.conflicts) == (30, 0, 0)
    place = fieldcrypt.Place("users", "ssn")
    stored = raw(engine)
    assert len(stored) == 30
    assert {keyring.key_id_of(v) for v in stored.values()} == {new} != {old}
    assert all(keyring.decrypt(v, place) == ssn(i).encode() for i, v in stored.items())
    again = reencrypt_column(engine, spec, batch_size=8)
    assert (again.scanned, again.written) == (30, 0)
    assert status(engine, spec).by_data_key == {new: 30}


def test_dry_run_counts_and_writes_nothing(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """A dry run reports how many rows would change and leaves every stored byte as it was."""
    users(rows=encrypted_rows(keyring, 12), ssn_type=sa.LargeBinary)
    keyring.rotate()
    before = raw(engine)
    report = reencrypt_column(engine, spec, dry_run=True, batch_size=5)
    assert (report.to_change, report.written, report.dry_run) == (12, 0, True)
    assert raw(engine) == before


def test_segments_split_the_table_between_jobs(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """Segments 0/3, 1/3 and 2/3 each move a disjoint third; together, every row."""
    users(rows=encrypted_rows(keyring, 31), ssn_type=sa.LargeBinary)
    new = keyring.rotate().key_id
    written = [reencrypt_column(engine, spec, segment=f"{i}/3", batch_size=4).written for i in range(3)]
    assert written == [10, 11, 10]
    assert {keyring.key_id_of(v) for v in raw(engine).values()} == {new}


def test_bad_segment_and_missing_column_are_refused(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any
) -> None:
    """Malformed segments, unknown columns and tables fail with a specific message."""
    users()
    with pytest.raises(ConfigurationError, match=r"need 0 <= i < N"):
        reencrypt_column(engine, ColumnSpec("users", "ssn", keyring="pii"), segment="3/3")
    with pytest.raises(ConfigurationError, match=r"table 'users' has no column 'nope'"):
        reencrypt_column(engine, ColumnSpec("users", "nope", keyring="pii"))
    with pytest.raises(ConfigurationError, match=r"table 'ghosts' does not exist"):
        reencrypt_column(engine, ColumnSpec("ghosts", "ssn", keyring="pii"))


def test_undecryptable_value_is_listed_and_left_alone(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec
) -> None:
    """A tampered value is reported by row and never overwritten; the other rows move on."""
    rows = encrypted_rows(keyring, 5)
    bad = bytearray(rows[2][1])
    bad[-1] ^= 1
    rows[2] = (3, bytes(bad))
    users(rows=rows, ssn_type=sa.LargeBinary)
    keyring.rotate()
    report = reencrypt_column(engine, spec)
    assert (report.written, report.failed) == (4, 1)
    assert report.failures == [("3", "cannot decrypt users.ssn")]
    assert raw(engine)[3] == bytes(bad)


def test_row_binding_reencrypts_with_the_row_key(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any
) -> None:
    """With row binding, values are bound to their id, and stay bound after re-encryption."""
    bound = ColumnSpec("users", "ssn", keyring="pii", bind_row=True)
    users(rows=[(i, keyring.encrypt(ssn(i), bound.place(i))) for i in range(1, 6)], ssn_type=sa.LargeBinary)
    keyring.rotate()
    assert reencrypt_column(engine, bound).written == 5
    stored = raw(engine)
    assert keyring.decrypt(stored[2], bound.place(2)) == ssn(2).encode()
    with pytest.raises(fieldcrypt.DecryptionError, match=r"^cannot decrypt users\.ssn \(row 3\)$"):
        keyring.decrypt(stored[2], bound.place(3))


def test_checkpoint_resumes_after_the_last_commit(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any, spec: ColumnSpec, tmp_path: Any
) -> None:
    """A run stopped mid-table resumes from its checkpoint instead of rescanning from the start."""
    users(rows=encrypted_rows(keyring, 20), ssn_type=sa.LargeBinary)
    keyring.rotate()

    class Stop(Exception):
        pass

    def stop_after_two(report: Any) -> None:
        if report.batches == 2:
            raise Stop

    with pytest.raises(Stop):
        reencrypt_column(
            engine, spec, batch_size=5, checkpoint_dir=str(tmp_path / "ckpt"), progress=stop_after_two
        )
    resumed = reencrypt_column(engine, spec, batch_size=5, checkpoint_dir=str(tmp_path / "ckpt"))
    assert (resumed.resumed_after, resumed.scanned, resumed.written) == ([10], 10, 10)
    assert not list((tmp_path / "ckpt").iterdir())  # a finished job leaves no checkpoint behind


def test_composite_primary_key_with_row_binding(engine: sa.Engine, keyring: fieldcrypt.Keyring) -> None:
    """A (tenant, id) key: pages by tuple, binds each value to the tuple, writes back by both columns."""
    table = sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("tenant", sa.String(16), primary_key=True),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("secret", sa.LargeBinary),
    )
    table.create(engine)
    spec = ColumnSpec("accounts", "secret", keyring="pii", bind_row=True)
    keys = [(t, i) for t in ("acme", "beta", "zeta") for i in range(1, 5)]
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"tenant": t, "id": i, "secret": keyring.encrypt(f"{t}{i}", spec.place((t, i)))}
                for t, i in keys
            ],
        )
    new = keyring.rotate().key_id
    report = reencrypt_column(engine, spec, batch_size=5)
    assert (report.written, report.batches) == (12, 3)
    with engine.connect() as conn:
        stored = {(r.tenant, r.id): r.secret for r in conn.execute(sa.select(table))}
    assert {keyring.key_id_of(v) for v in stored.values()} == {new}
    assert all(keyring.decrypt(stored[k], spec.place(k)) == f"{k[0]}{k[1]}".encode() for k in keys)


def test_row_changed_between_read_and_write_is_kept_and_reread(
    engine: sa.Engine, keyring: fieldcrypt.Keyring, users: Any
) -> None:
    """An application update landing between the engine's read and its write survives; the page is re-read."""
    table = users(rows=encrypted_rows(keyring, 6), ssn_type=sa.LargeBinary)
    new = keyring.rotate().key_id
    place = fieldcrypt.Place("users", "ssn")
    app_value = keyring.encrypt("999-99-9999", place)

    class Meddling(fieldcrypt.Keyring):
        meddled = False

        def encrypt(self, plaintext: bytes | str, where: fieldcrypt.Place) -> bytes:
            if not self.meddled:  # the application writes row 4 while the engine computes
                Meddling.meddled = True
                with engine.begin() as conn:
                    conn.execute(table.update().where(table.c.id == 4).values(ssn=app_value))
            return super().encrypt(plaintext, where)

    meddler = Meddling("pii", keyring.master_key, keyring.key_store)
    report = reencrypt_column(engine, ColumnSpec("users", "ssn", keyring=meddler))
    assert (report.written, report.conflicts, report.failed) == (5, 0, 0)  # row 4 is the application's
    stored = raw(engine)
    assert stored[4] == app_value
    assert {keyring.key_id_of(v) for v in stored.values()} == {new}
