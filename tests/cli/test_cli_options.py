"""The CLI takes a column's options from the models, or refuses options that contradict the column:
text-storage ciphertexts are never counted as plaintext nor encrypted twice; no default codec."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from cli_helpers import payload
from click.testing import Result
from rotation_helpers import create_users, ssn

import fieldcrypt
from fieldcrypt import format as fmt
from fieldcrypt.sqlalchemy import Encrypted

SSNS = {i: ssn(i) for i in range(1, 7)}


def _stored(engine: sa.Engine, column: str = "ssn") -> dict[int, object]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, {column} FROM users ORDER BY id")).all()
    return {r[0]: bytes(r[1]) if isinstance(r[1], memoryview) else r[1] for r in rows}


def _column_type(engine: sa.Engine) -> str:
    found = next(c["type"] for c in sa.inspect(engine).get_columns("users") if c["name"] == "ssn")
    return str(found.compile(engine.dialect))


def test_text_storage_ciphertexts_are_refused_without_storage_text(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """status, verify, reencrypt and encrypt-column on a column of base64 ciphertexts, run without
    --storage text, refuse (exit 3, saying --storage text) instead of reporting or encrypting plaintext;
    the column is left exactly as it was, type included."""
    spec = fieldcrypt.rotation.ColumnSpec("users", "ssn", keyring=keyring, codec="text", storage="text")
    create_users(engine, sa.Text(), [(i, spec.encrypt(v)) for i, v in SSNS.items()])
    before, kind = _stored(engine), _column_type(engine)
    assert all(isinstance(v, str) for v in before.values())
    for command in (
        ("status",),
        ("verify", "--codec", "text"),
        ("reencrypt",),
        ("encrypt-column", "--codec", "text"),
    ):
        refused = run(command[0], "users.ssn", *command[1:])
        assert refused.exit_code == 3, (command, refused.stdout)
        assert (
            "users.ssn holds fieldcrypt ciphertexts stored as text (storage='text'), not binary"
            in refused.stderr
        )
        assert "--storage text" in refused.stderr
    assert (_stored(engine), _column_type(engine)) == (before, kind)
    status = run("status", "users.ssn", "--storage", "text", json_output=True)
    assert status.exit_code == 0, status.stderr
    assert (payload(status)["plaintext"], payload(status)["encrypted"]) == (0, len(SSNS))
    again = run("encrypt-column", "users.ssn", "--codec", "text", "--storage", "text", json_output=True)
    assert (again.exit_code, payload(again)["written"]) == (0, 0)
    assert _stored(engine) == before


def test_binary_ciphertexts_are_refused_as_text_storage(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """The other way round: binary ciphertexts read with --storage text are refused, not plaintext."""
    spec = fieldcrypt.rotation.ColumnSpec("users", "ssn", keyring=keyring, codec="text")
    create_users(engine, sa.LargeBinary(), [(i, spec.encrypt(v)) for i, v in SSNS.items()])
    refused = run("status", "users.ssn", "--storage", "text")
    assert refused.exit_code == 3
    assert "holds fieldcrypt ciphertexts stored as binary (storage='binary'), not text" in refused.stderr


def test_commands_that_read_values_need_the_codec(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """verify, decrypt-column and reindex without --metadata or --codec refuse: no codec is assumed."""
    spec = fieldcrypt.rotation.ColumnSpec("users", "ssn", keyring=keyring, codec="text")
    create_users(engine, sa.LargeBinary(), [(i, spec.encrypt(v)) for i, v in SSNS.items()])
    for command in ("verify", "decrypt-column", "reindex"):
        refused = run(command, "users.ssn")
        assert refused.exit_code == 3, command
        assert "users.ssn: reading or writing values needs the column's type" in refused.stderr
    assert run("status", "users.ssn").exit_code == 0  # status reads headers only


def test_encrypt_column_reads_the_codec_from_the_column_and_refuses_a_contradiction(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring
) -> None:
    """encrypt-column on a BOOLEAN column encrypts booleans (read from the column type); --codec text
    on it is refused before the column is touched; Encrypted(Boolean) then reads every row."""
    create_users(engine, sa.Boolean(), [(1, True), (2, False), (3, None)])
    kind = _column_type(engine)
    refused = run("encrypt-column", "users.ssn", "--codec", "text")
    assert refused.exit_code == 3
    assert "values, but the declared Encrypted type encrypts text values" in refused.stderr
    assert _column_type(engine) == kind
    given: list[str] = []
    if engine.dialect.name == "mariadb":  # BOOLEAN is TINYINT(1) there: an int column looks the same
        ambiguous = run("encrypt-column", "users.ssn")
        assert ambiguous.exit_code == 3
        assert "its values' type cannot be read from the column alone" in ambiguous.stderr
        given = ["--codec", "bool"]
    done = run("encrypt-column", "users.ssn", *given, json_output=True)
    assert (done.exit_code, payload(done)["written"]) == (0, 2), done.stderr
    assert all(fmt.looks_like_ciphertext(v) for v in _stored(engine).values() if v is not None)
    model = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ssn", Encrypted(sa.Boolean(), keyring="pii")),
    )
    fieldcrypt.register(keyring, replace=True)
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(model.c.id, model.c.ssn)).all()) == {1: True, 2: False, 3: None}
    verified = run("verify", "users.ssn", "--codec", "bool", json_output=True)
    assert (verified.exit_code, payload(verified)["decrypted"]) == (0, 2)


def test_bind_row_is_the_one_name_for_row_binding(
    engine: sa.Engine, run: Callable[..., Result], keyring: fieldcrypt.Keyring, tmp_path: object
) -> None:
    """--bind-row (and bind_row in the config file) is Encrypted's name; 0.1's row_binding key is refused, not ignored."""
    bound = fieldcrypt.rotation.ColumnSpec("users", "ssn", keyring=keyring, codec="text", bind_row=True)
    create_users(engine, sa.LargeBinary(), [(i, bound.encrypt(v, row=(i,))) for i, v in SSNS.items()])
    unbound = run("verify", "users.ssn", "--codec", "text", "--no-bind-row", json_output=True)
    assert unbound.exit_code != 0  # read unbound, every row-bound value fails to decrypt
    verified = run("verify", "users.ssn", "--codec", "text", "--bind-row", json_output=True)
    assert verified.exit_code == 0, verified.stderr
    old = f"{tmp_path}/old.toml"
    with open(old, "w") as file:
        file.write('[columns."users.ssn"]\ncodec = "text"\nrow_binding = true\n')
    refused = run("--config", old, "verify", "users.ssn")
    assert refused.exit_code != 0
    assert "row_binding is now bind_row" in refused.stderr
