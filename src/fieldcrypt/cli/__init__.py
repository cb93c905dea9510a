"""The ``fieldcrypt`` command line: key administration, column migration, status, values.

Exit codes: 0 done; 1 ran but work remains (failed or conflicting rows, plaintext or old keys
left, verify failures); 2 bad command line; 3 configuration error; 4 KMS / master key refused;
5 a value could not be decrypted. See docs/rotation.md.
"""

from __future__ import annotations

from typing import Any

import click

from fieldcrypt.cli import globals_, outage, output
from fieldcrypt.cli.context import State
from fieldcrypt.errors import ConfigurationError, DecryptionError, FieldcryptError, KeyAccessError

_CODES: list[tuple[type[FieldcryptError], int]] = [
    (ConfigurationError, output.EXIT_CONFIGURATION),
    (KeyAccessError, output.EXIT_KEY_ACCESS),
    (DecryptionError, output.EXIT_DECRYPTION),
]


class _Group(click.Group):
    """Turns fieldcrypt errors and unreachable services into a one-line message and a specific
    exit code (never 1, which means "work remains")."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FieldcryptError as exc:
            code = next((c for kind, c in _CODES if isinstance(exc, kind)), output.EXIT_CONFIGURATION)
            self._fail(ctx, str(exc), code)
        except Exception as exc:
            message = outage.describe(exc)
            if message is None:
                raise
            self._fail(ctx, message, output.EXIT_CONFIGURATION)

    @staticmethod
    def _fail(ctx: click.Context, message: str, code: int) -> None:
        state = ctx.obj if isinstance(ctx.obj, State) else None
        (state.out if state else output.Output(False)).error(message, code)
        ctx.exit(code)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=globals_.EPILOG,
)
@globals_.options
@click.version_option(package_name="fieldcrypt")
@click.pass_context
def cli(ctx: click.Context, /, config_path: str | None, as_json: bool, quiet: bool, **flags: Any) -> None:
    """Client-side field encryption: keys, column migrations, status and values.

    \b
    A TARGET names one encrypted column:
      TABLE.COLUMN or SCHEMA.TABLE.COLUMN    a SQL column (--database-url)
      dynamodb:TABLE.ATTRIBUTE               an attribute of a DynamoDB table (--region, --endpoint-url)
    The key store (where data keys live) is set by --key-store: fieldcrypt_keys in the database by
    default, or dynamodb:TABLE. Exit codes: 0 done, 1 work remains, 2 bad command line,
    3 configuration or a service unreachable, 4 KMS refused, 5 a value could not be decrypted.
    """
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
        columns.rebind,
        values.encrypt,
        values.decrypt,
        values.init,
    ):
        cli.add_command(command)
    globals_.attach(cli)


_register()


def main() -> None:
    """Console-script entry point (``fieldcrypt``)."""
    cli(prog_name="fieldcrypt")
