"""``fieldcrypt encrypt`` / ``decrypt`` of one value or file (like ``aws kms encrypt --output
text``), and ``fieldcrypt init`` (a local master key and key store for development)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import BinaryIO

import click

from fieldcrypt import config
from fieldcrypt import format as fmt
from fieldcrypt.cli.context import State
from fieldcrypt.errors import ConfigurationError, DecryptionError
from fieldcrypt.keys.master import LocalMasterKey
from fieldcrypt.place import Place

DEFAULT_PLACE = "fieldcrypt.value"


def _place(text: str) -> Place:
    table, dot, column = text.rpartition(".")
    if not dot:
        raise ConfigurationError(f"--place is TABLE.COLUMN, not {text!r}")
    return Place(table, column)


def _read(source: str | None, value: str | None) -> bytes:
    if value is not None and source is not None:
        raise click.UsageError("give either --value or a FILE, not both")
    if value is not None:
        return value.encode("utf-8")
    stream: BinaryIO = sys.stdin.buffer if source in (None, "-") else Path(str(source)).open("rb")  # noqa: SIM115
    with stream:
        return stream.read()


@click.command()
@click.argument("source", required=False, metavar="[FILE|-]")
@click.option("--value", help="Encrypt this string instead of a file (it may end up in shell history).")
@click.option("--place", default=DEFAULT_PLACE, show_default=True, help="TABLE.COLUMN the value is bound to.")
@click.option("--output", type=click.Choice(["text", "binary"]), default="text", show_default=True)
@click.option(
    "--public-key",
    metavar="FILE",
    help="Encrypt as a write-only producer with this PEM/DER public key of the RSA KMS key named by "
    "--master-key: no AWS call, no credentials (like aws kms encrypt with an asymmetric key).",
)
@click.pass_obj
def encrypt(
    state: State, source: str | None, value: str | None, place: str, output: str, public_key: str | None
) -> None:
    """Encrypt a value or a file (stdin by default); print base64 (text) or write raw v1 bytes."""
    data = _read(source, value)
    keyring = config.build_keyring(state.settings, public_key=public_key) if public_key else state.keyring
    blob = keyring.encrypt(data, _place(place))
    if output == "text":
        sys.stdout.write(fmt.to_text(blob) + "\n")
    else:
        sys.stdout.buffer.write(blob)
    sys.stdout.flush()


@click.command()
@click.argument("source", required=False, metavar="[FILE|-]")
@click.option("--value", help="Decrypt this base64 text instead of a file.")
@click.option("--place", default=DEFAULT_PLACE, show_default=True, help="TABLE.COLUMN it was encrypted for.")
@click.option("--out", "out", metavar="FILE", help="Write the plaintext here instead of stdout.")
@click.pass_obj
def decrypt(state: State, source: str | None, value: str | None, place: str, out: str | None) -> None:
    """Decrypt base64 text or raw v1 bytes (detected) and write the plaintext (stdout by default)."""
    data = _read(source, value)
    where = _place(place)
    if data[:1] == bytes((fmt.VERSION_1,)):
        blob = data
    else:
        try:
            blob = fmt.from_text(data.strip().decode("ascii"))
        except (fmt.MalformedCiphertext, UnicodeDecodeError):
            raise DecryptionError(table=where.table, column=where.column) from None
    plaintext = state.keyring.decrypt(blob, where)
    if out:
        Path(out).write_bytes(plaintext)
    else:
        sys.stdout.buffer.write(plaintext)
        sys.stdout.flush()


@click.command()
@click.option(
    "--key-file", default=".fieldcrypt/master.key", show_default=True, help="Where to write the key."
)
@click.option(
    "--write-config/--no-write-config", default=True, show_default=True, help="Write ./fieldcrypt.toml."
)
@click.pass_obj
def init(state: State, key_file: str, write_config: bool) -> None:
    """Set up a key store: its table, a first data key, and fieldcrypt.toml.

    With --master-key (or FIELDCRYPT_MASTER_KEY_URI) that key wraps the first data key: a KMS key
    ARN makes a KMS-backed key store, as production needs. Without one, a new local master key is
    written to --key-file (mode 0600), for development; never commit it.
    """
    given = state.flags.get("master_key") or os.environ.get("FIELDCRYPT_MASTER_KEY_URI")
    path = None if given else Path(key_file)
    if path is not None:
        if path.exists():
            raise ConfigurationError(f"{path} already exists; refusing to overwrite a master key")
        path.parent.mkdir(parents=True, exist_ok=True)
        LocalMasterKey.write_new(path)
        state.flags["master_key"] = f"file:{path}"
    if not (state.flags.get("database_url") or state.settings.database_url):
        state.flags["database_url"] = "sqlite:///fieldcrypt.db"
    state.__dict__.pop("settings", None)  # reload with the new key and database
    settings = state.settings
    keyring = state.keyring
    keyring.key_store.create_table()  # type: ignore[attr-defined]
    data_key = keyring.current_key_id()
    config_path = Path("fieldcrypt.toml")
    url = shown_url(settings.database_url)
    if write_config and not config_path.exists():
        assert settings.master_key is not None  # given, or the file just written
        _write_config(
            config_path, settings.database_url, settings.keyring, settings.master_key, settings.region
        )
    master = keyring.master_key
    result = {
        "key_file": None if path is None else str(path),
        "master_key_id": master.key_id,
        "database_url": url,
        "key_store_table": settings.key_store_table,
        "keyring": keyring.name,
        "data_key_id": data_key,
        "config_file": str(config_path) if write_config else None,
    }
    state.out.result(
        result,
        lambda: state.out.say(
            (
                f"wrote local master key {master.key_id} to {path} (keep it out of git and backups); "
                if path is not None
                else f"master key {master.key_id}; "
            )
            + f"key store {settings.key_store_table} ready in {url}; keyring {keyring.name} data key {data_key}"
        ),
    )


def shown_url(url: str | None) -> str | None:
    """A database URL fit to print: its password replaced by ``***`` (never shown if unparseable)."""
    if url is None:
        return None
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<database URL not shown: it could not be parsed>"


def _write_config(
    path: Path, database_url: str | None, keyring: str, master_key: str, region: str | None
) -> None:
    """fieldcrypt.toml, readable by its owner only, never holding a database password.

    A URL with a password is left out: the file names the environment variable to set instead.
    """
    import sqlalchemy as sa

    lines = ["[fieldcrypt]"]
    if database_url and sa.make_url(database_url).password is None:
        lines.append(f"database_url = {json.dumps(database_url)}")
    else:
        lines.append("# database_url: its password stays out of this file; set FIELDCRYPT_DATABASE_URL")
    lines += [f"keyring = {json.dumps(keyring)}", f"master_key = {json.dumps(master_key)}"]
    if region:
        lines.append(f"region = {json.dumps(region)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
