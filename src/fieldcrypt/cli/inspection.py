"""``status`` and ``verify`` on TABLE.COLUMN (or ``status`` on ``dynamodb:TABLE.ATTRIBUTE``).

Both only read: ``status`` reads value headers and the key store (no KMS call, no plaintext);
``verify`` decrypts every value and lists the rows that fail.
"""

from __future__ import annotations

import click

from fieldcrypt.cli.columns import _column_options, _dynamodb, _dynamodb_endpoint, _spec
from fieldcrypt.cli.context import State
from fieldcrypt.cli.output import EXIT_INCOMPLETE
from fieldcrypt.rotation import inspect


@click.command()
@_column_options
@click.pass_obj
def status(state: State, target: str, codec: str | None, storage: str | None, bind_row: bool | None) -> None:
    """Values per data key and master key, plaintext left, undecryptable rows (no decryption).

    Exit code 1 when work remains: plaintext, values not on the current key, or undecryptable ones.
    """
    if target.startswith("dynamodb:"):
        result = _dynamodb(state).run_status(
            target, keyring=state.keyring, endpoint_url=_dynamodb_endpoint(), region=state.settings.region
        )
        state.out.result(result, lambda: state.out.say(str(result)))
        return
    spec = _spec(state, target, codec, storage, bind_row)
    found = inspect.status(state.engine, spec)
    data = found.as_dict()
    state.out.result(data, lambda: _say_status(state, found))
    if found.plaintext or found.not_current or found.destroyed or found.unknown_key:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


def _say_status(state: State, found: inspect.ColumnStatus) -> None:
    state.out.say(
        f"{found.table}.{found.column}: {found.rows} rows, {found.encrypted} encrypted, "
        f"{found.plaintext} plaintext, {found.null} NULL; current data key {found.current_key}, "
        f"{found.not_current} values on older keys"
    )
    state.out.table(
        "values per data key", ["data key", "values"], [[k, n] for k, n in found.by_data_key.items()]
    )
    state.out.table(
        "values per master key", ["master key", "values"], [[k, n] for k, n in found.by_master_key.items()]
    )
    state.out.say(
        f"undecryptable: {found.destroyed} under destroyed keys, {found.unknown_key} under unknown keys"
    )
    _say_rows(state, "plaintext (never encrypted, or written back in clear)", found.plaintext_rows)
    _say_rows(state, "shaped like ciphertext but naming no data key of this keyring", found.unknown_key_rows)


def _say_rows(state: State, what: str, rows: list[str]) -> None:
    if rows:
        state.out.say(f"rows {what}: {', '.join(rows[:50])}{' ...' if len(rows) > 50 else ''}")


@click.command()
@_column_options
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.pass_obj
def verify(
    state: State,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    batch_size: int,
) -> None:
    """Decrypt every value; list the rows that fail. Exit code 1 if any fails or is plaintext."""
    spec = _spec(state, target, codec, storage, bind_row)
    result = inspect.verify(state.engine, spec, batch_size=batch_size)
    data = result.as_dict()

    def human() -> None:
        state.out.say(
            f"{result.table}.{result.column}: {result.decrypted} decrypted, {result.failed} failed, "
            f"{result.plaintext} plaintext, {result.null} NULL"
        )
        for row, error in result.failures[:50]:
            state.out.say(f"  row {row}: {error}")
        _say_rows(state, "plaintext", result.plaintext_rows)

    state.out.result(data, human)
    if not result.ok:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)
