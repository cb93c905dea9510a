"""The ``fieldcrypt`` command line: key administration, column migration, status, values.

Exit codes: 0 done; 1 ran but work remains (failed or conflicting rows, plaintext or old keys
left, verify failures); 2 bad command line; 3 configuration error; 4 KMS / master key refused;
5 a value could not be decrypted. See docs/rotation.md.
"""

from __future__ import annotations

from typing import Any

import click

from fieldcrypt.cli import output
from fieldcrypt.cli.context import State
from fieldcrypt.errors import ConfigurationError, DecryptionError, FieldcryptError, KeyAccessError

_CODES: list[tuple[type[FieldcryptError], int]] = [
    (ConfigurationError, output.EXIT_CONFIGURATION),
    (KeyAccessError, output.EXIT_KEY_ACCESS),
    (DecryptionError, output.EXIT_DECRYPTION),
]


class _Group(click.Group):
    """Turns fieldcrypt errors into a one-line message and a specific exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FieldcryptError as exc:
            code = next((c for kind, c in _CODES if isinstance(exc, kind)), output.EXIT_CONFIGURATION)
            state = ctx.obj if isinstance(ctx.obj, State) else None
            (state.out if state else output.Output(False)).error(str(exc), code)
            ctx.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", metavar="PATH", help="TOML config file (default ./fieldcrypt.toml).")
@click.option(
    "--database-url", metavar="URL", help="SQLAlchemy URL of the database [FIELDCRYPT_DATABASE_URL]."
)
@click.option("--keyring", metavar="NAME", help="Keyring name [FIELDCRYPT_KEYRING, default pii].")
@click.option(
    "--namespace",
    metavar="ID",
    help="The keyring's namespace (database or tenant id), as the application sets it [FIELDCRYPT_NAMESPACE].",
)
@click.option("--master-key", metavar="ARN|file:PATH|env:VAR", help="Master key [FIELDCRYPT_MASTER_KEY_URI].")
@click.option(
    "--also-decrypt-with",
    metavar="KEY",
    multiple=True,
    help="Extra master key allowed to unwrap (repeatable).",
)
@click.option("--region", metavar="REGION", help="AWS region this process calls KMS in [FIELDCRYPT_REGION].")
@click.option(
    "--kms-endpoint-url", metavar="URL", help="KMS endpoint (VPC endpoint) [FIELDCRYPT_KMS_ENDPOINT_URL]."
)
@click.option("--key-store-url", metavar="URL", help="Database of the key store, if not the same one.")
@click.option(
    "--metadata",
    metavar="MODULE:ATTR",
    help="Models' MetaData: column options from Encrypted(...) [FIELDCRYPT_METADATA].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or human output on stderr.")
@click.version_option(package_name="fieldcrypt")
@click.pass_context
def cli(ctx: click.Context, /, config_path: str | None, as_json: bool, quiet: bool, **flags: Any) -> None:
    """Client-side field encryption: keys, column migrations, status and values."""
    ctx.obj = State(config_path, flags, output.Output(as_json, quiet=quiet))


def _register() -> None:
    from fieldcrypt.cli import columns, inspection, keys, values

    cli.add_command(keys.keys)
    for command in (
        inspection.status,
        columns.encrypt_column,
        columns.reencrypt,
        columns.decrypt_column,
        inspection.verify,
        columns.reindex,
        values.encrypt,
        values.decrypt,
        values.init,
    ):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point (``fieldcrypt``)."""
    cli(prog_name="fieldcrypt")
