"""The global options (``--json``, ``--database-url``, ``--key-store``, ...), accepted before the
command (``fieldcrypt --json keys list``) and after it (``fieldcrypt keys list --json``).

They are declared once here. The group takes them as parameters; every subcommand gets hidden
copies whose callbacks write into the invocation's :class:`~fieldcrypt.cli.context.State`, so
where an option is written does not change what it means. A subcommand's own option of the same
name (``init --master-key``) wins over the global copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fieldcrypt.cli.context import State

EPILOG = (
    "Global options may also follow the command: `fieldcrypt keys list --json`. "
    "Each option also reads the FIELDCRYPT_* environment variable shown, then fieldcrypt.toml."
)

# (param decls, click.option keyword arguments)
OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--config", "config_path"),
        {"metavar": "PATH", "help": "TOML config file (default ./fieldcrypt.toml)."},
    ),
    (
        ("--database-url",),
        {"metavar": "URL", "help": "SQLAlchemy URL of the database [FIELDCRYPT_DATABASE_URL]."},
    ),
    (("--keyring",), {"metavar": "NAME", "help": "Keyring name [FIELDCRYPT_KEYRING, default pii]."}),
    (
        ("--namespace",),
        {
            "metavar": "ID",
            "help": "The keyring's namespace (database or tenant id), as the application sets it "
            "[FIELDCRYPT_NAMESPACE].",
        },
    ),
    (
        ("--master-key",),
        {"metavar": "ARN|file:PATH|env:VAR", "help": "Master key [FIELDCRYPT_MASTER_KEY_URI]."},
    ),
    (
        ("--also-decrypt-with",),
        {"metavar": "KEY", "multiple": True, "help": "Extra master key allowed to unwrap (repeatable)."},
    ),
    (
        ("--key-store",),
        {
            "metavar": "dynamodb:TABLE|sql:TABLE|URL",
            "help": "Where data keys live [FIELDCRYPT_KEY_STORE; default fieldcrypt_keys in the database].",
        },
    ),
    (
        ("--subject-key-store",),
        {
            "metavar": "dynamodb:TABLE|sql:TABLE|URL",
            "help": "Where subject keys live [FIELDCRYPT_SUBJECT_KEY_STORE; default the key store].",
        },
    ),
    (("--key-store-url",), {"metavar": "URL", "help": "Database of the SQL key store, if not the same one."}),
    (("--region",), {"metavar": "REGION", "help": "AWS region for KMS and DynamoDB [FIELDCRYPT_REGION]."}),
    (
        ("--kms-endpoint-url",),
        {"metavar": "URL", "help": "KMS endpoint (VPC endpoint) [FIELDCRYPT_KMS_ENDPOINT_URL]."},
    ),
    (
        ("--endpoint-url", "dynamodb_endpoint_url"),
        {
            "metavar": "URL",
            "help": "DynamoDB endpoint (DynamoDB Local, VPC endpoint) [FIELDCRYPT_DYNAMODB_ENDPOINT_URL].",
        },
    ),
    (
        ("--metadata",),
        {
            "metavar": "MODULE:ATTR",
            "help": "Models' MetaData: column options from Encrypted(...) [FIELDCRYPT_METADATA].",
        },
    ),
    (
        ("--tenant",),
        {
            "metavar": "ID",
            "help": "Only this tenant: its keyring (from the application's TenantKeyrings) and, for "
            "a column, its rows [FIELDCRYPT_TENANT].",
        },
    ),
    (
        ("--tenant-keyrings",),
        {
            "metavar": "MODULE:ATTR",
            "help": "The application's TenantKeyrings, or a function returning it "
            "[FIELDCRYPT_TENANT_KEYRINGS].",
        },
    ),
    (("--json", "as_json"), {"is_flag": True, "help": "Machine-readable result on stdout."}),
    (("-q", "--quiet"), {"is_flag": True, "help": "No progress or human output on stderr."}),
]


def options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate the group with every global option."""
    for decls, kwargs in reversed(OPTIONS):
        function = click.option(*decls, **kwargs)(function)
    return function


def attach(command: click.Command) -> None:
    """Give ``command``'s subcommands (recursively) hidden copies of the global options."""
    if not isinstance(command, click.Group):
        return
    for sub in command.commands.values():
        taken = {name for param in sub.params for name in param.opts + param.secondary_opts}
        for decls, kwargs in OPTIONS:
            option = click.Option(
                list(decls), **kwargs, hidden=True, expose_value=False, callback=_store, is_eager=False
            )
            if not taken.intersection(option.opts):
                sub.params.append(option)
        attach(sub)


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value in (None, False, ()):
        return value  # not given after the command: what came before it stands
    state = ctx.find_object(State)
    if state is None:  # pragma: no cover - the group always makes one first
        return value
    name = param.name
    if name == "as_json":
        state.out.as_json = True
    elif name == "quiet":
        state.out.quiet = True
    elif name == "config_path":
        state.config_path = value
    else:
        state.flags[str(name)] = list(value) if isinstance(value, tuple) else value
    state.__dict__.pop("settings", None)  # settings are read lazily; never from before this option
    return value
