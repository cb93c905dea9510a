"""``fieldcrypt keys list|rotate|tenants|upgrade|rewrap|retire|destroy|shred|rekey-subjects``:
data-key administration.

With ``--tenant ID`` every command works on that tenant's keyring alone (docs/tenants.md)."""

from __future__ import annotations

from typing import Any

import click

from fieldcrypt.cli.context import State
from fieldcrypt.keys.record import DataKeyRecord, Purpose
from fieldcrypt.keys.resolve import master_key_from
from fieldcrypt.ratelimit import TokenBucket
from fieldcrypt.rotation import admin

PURPOSE = click.Choice([p.value for p in Purpose])
MIN_PREFIX = 8  # 32 bits: a collision among a keyring's few hundred keys is then very unlikely


def _describe(record: DataKeyRecord, standing: str | None = None) -> dict[str, Any]:
    described = {
        "key_id": record.key_id,
        "purpose": record.purpose.value,
        "status": record.status.value,
        "created_at": record.created_at.isoformat(),
        "generation": record.generation,
        "wrapped_under": sorted(record.wraps),
    }
    return described if standing is None else described | {"standing": standing}


@click.group()
def keys() -> None:
    """List, rotate, rewrap, retire, destroy and shred the keyring's data keys."""


@keys.command("list")
@click.option("--purpose", type=PURPOSE, help="Only keys of this purpose.")
@click.pass_obj
def list_(state: State, purpose: str | None) -> None:
    """Every data key: purpose, status, standing for new values, creation, master keys wrapping
    it; rows that cannot be read; the anchor's fingerprint (to pin as anchor_id)."""
    keyring = state.keyring
    standing = keyring.key_states()
    records = [
        _describe(r, standing.get(r.key_id))
        for r in admin.list_keys(keyring, Purpose(purpose) if purpose else None)
    ]
    damaged = [{"key_id": d.key_id, "reason": d.reason} for d in keyring.key_store.damaged(keyring.name)]
    anchor = keyring.anchor_fingerprint()

    def human() -> None:
        state.out.table(
            f"keyring {keyring.name} (anchor {anchor or 'none: a 0.1 key store, see `keys upgrade`'})",
            ["key id", "purpose", "status", "standing", "generation", "created", "wrapped under"],
            [
                [
                    r["key_id"],
                    r["purpose"],
                    r["status"],
                    r["standing"],
                    str(r["generation"] or "-"),
                    r["created_at"],
                    ", ".join(r["wrapped_under"]),
                ]
                for r in records
            ],
        )
        for row in damaged:
            state.out.say(f"unreadable key-store row {row['key_id']}: {row['reason']} (skipped)")

    state.out.result({"keyring": keyring.name, "anchor": anchor, "keys": records, "damaged": damaged}, human)


@keys.command()
@click.option("--purpose", type=PURPOSE, default=Purpose.ENCRYPTION.value, show_default=True)
@click.pass_obj
def rotate(state: State, purpose: str) -> None:
    """Make a new data key; new values use it (other processes within refresh_every)."""
    record = state.keyring.rotate(Purpose(purpose))
    state.out.result(_describe(record), lambda: state.out.say(f"new {purpose} data key {record.key_id}"))


@keys.command()
@click.pass_obj
def tenants(state: State) -> None:
    """The tenants with data keys in the key store, of the TenantKeyrings named by --keyring
    (each is one --tenant ID for status, reencrypt, verify and the keys commands)."""
    from fieldcrypt import config

    supplier = config.tenant_keyrings(state.settings)
    found = supplier.stored_tenants()
    state.out.result(
        {"keyring": supplier.name, "tenants": found},
        lambda: state.out.say("\n".join(found) if found else f"no tenant of {supplier.name} has keys yet"),
    )


@keys.command()
@click.pass_obj
def upgrade(state: State) -> None:
    """Upgrade a fieldcrypt 0.1 key store: anchor, record authentication (see docs/rotation.md).

    Every 0.1 key present is vouched for: check `fieldcrypt keys list` first.
    """
    adopted = admin.upgrade(state.keyring)
    anchor = state.keyring.anchor_fingerprint()
    state.out.result(
        {"keyring": state.keyring.name, "anchor": anchor, "authenticated": [_describe(r) for r in adopted]},
        lambda: state.out.say(
            f"keyring {state.keyring.name}: {len(adopted)} data keys authenticated; anchor {anchor} "
            f'(pin it: anchor_id = "{anchor}")'
        ),
    )


@keys.command()
@click.option("--to", "to", required=True, metavar="ARN|file:PATH|env:VAR", help="The new master key.")
@click.option("--remove-old", is_flag=True, help="Then drop the copies under every other master key.")
@click.option("--dry-run", is_flag=True, help="Count what would be rewrapped; change nothing.")
@click.option("--max-kms-calls-per-second", type=click.FloatRange(min=0, min_open=True), metavar="N")
@click.pass_obj
def rewrap(
    state: State, to: str, remove_old: bool, dry_run: bool, max_kms_calls_per_second: float | None
) -> None:
    """Wrap every data key under another master key (ReEncrypt inside KMS where possible).

    No row of application data is read or written: the cost is one or two KMS calls per data key.
    With --tenant, only that tenant's data keys (a BYOK tenant moving to its new KMS key).
    """
    destination = master_key_from(to, region=state.settings.region)
    bucket = TokenBucket(max_kms_calls_per_second) if max_kms_calls_per_second else None
    report = admin.rewrap(
        state.keyring,
        destination,
        remove_old=remove_old,
        dry_run=dry_run,
        before_call=bucket.acquire if bucket else None,
    )
    data = report.as_dict() | {"dry_run": dry_run}
    state.out.result(
        data,
        lambda: state.out.say(
            f"{'would rewrap' if dry_run else 'rewrapped'} {report.rewrapped} data keys under {destination.key_id} "
            f"({report.already} already there, {report.reencrypt_calls} ReEncrypt calls, "
            f"{report.unwrap_wrap_calls} unwrap+wrap, {report.removed_copies} old copies removed)"
        ),
    )


def _resolve(state: State, prefix: str) -> str:
    """The full id of the keyring's one data key starting with ``prefix`` (at least 8 hex digits)."""
    wanted = prefix.strip().lower()
    if len(wanted) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in wanted):
        raise click.UsageError(
            f"give a data key id or its first {MIN_PREFIX} or more hex digits (see `fieldcrypt keys list`)"
        )
    matches = [r.key_id for r in admin.list_keys(state.keyring) if r.key_id.startswith(wanted)]
    if len(matches) > 1:
        raise click.UsageError(
            f"{prefix} matches {len(matches)} data keys: {', '.join(matches)}; give more digits"
        )
    if not matches:
        raise click.UsageError(f"keyring {state.keyring.name!r} has no data key starting with {prefix}")
    return matches[0]


@keys.command()
@click.argument("arguments", nargs=-1, metavar="KEY_ID | --unused TARGET...")
@click.option(
    "--unused",
    is_flag=True,
    help="Retire every active data key (but the current one) that holds no value in any TARGET given.",
)
@click.pass_obj
def retire(state: State, arguments: tuple[str, ...], unused: bool) -> None:
    """Stop using a data key for new values (values under it still decrypt). KEY_ID may be a prefix.

    With --unused, name every column of the keyring (TABLE.COLUMN or dynamodb:TABLE.ATTRIBUTE):
    a key with no value in one column may still hold values in another.
    """
    if unused:
        _retire_unused(state, arguments)
        return
    if len(arguments) != 1:
        raise click.UsageError("give one KEY_ID, or --unused and the keyring's columns")
    key_id = _resolve(state, arguments[0])
    record = admin.retire(state.keyring, key_id)
    state.out.result(_describe(record), lambda: state.out.say(f"data key {key_id} retired"))


def _retire_unused(state: State, targets: tuple[str, ...]) -> None:
    from fieldcrypt.cli.inspection import column_status

    if not targets:
        raise click.UsageError(
            "--unused needs every column that uses the keyring (TABLE.COLUMN or dynamodb:TABLE.ATTRIBUTE)"
        )
    statuses = [column_status(state, target, None, None, None) for target in targets]
    retired = admin.retire_unused(state.keyring, statuses)
    state.out.result(
        {"keyring": state.keyring.name, "columns": list(targets), "retired": [_describe(r) for r in retired]},
        lambda: state.out.say(
            f"retired {len(retired)} data keys with no value in {', '.join(targets)}"
            + (f": {', '.join(r.key_id for r in retired)}" if retired else "")
        ),
    )


@keys.command()
@click.argument("key_id")
@click.option("--yes", is_flag=True, help="Confirm: every value under this key becomes unreadable.")
@click.pass_obj
def destroy(state: State, key_id: str, yes: bool) -> None:
    """Crypto-shred a data key: erase its wrapped copies. Irreversible. KEY_ID may be a prefix."""
    key_id = _resolve(state, key_id)
    if not yes:
        raise click.UsageError(
            f"destroying data key {key_id} makes every value under it unreadable forever; "
            "check `fieldcrypt status` and pass --yes to go ahead"
        )
    record = admin.destroy(state.keyring, key_id)
    state.out.result(_describe(record), lambda: state.out.say(f"data key {key_id} destroyed"))


@keys.command()
@click.argument("key_id", required=False)
@click.option("--subject", metavar="ID", help="Erase one subject's own key instead (subject=... columns).")
@click.option("--to", "to", metavar="ARN|file:PATH|env:VAR", help="A new master key (with KEY_ID).")
@click.option("--yes", is_flag=True, help="Confirm: every value under this key becomes unreadable.")
@click.option("--max-kms-calls-per-second", type=click.FloatRange(min=0, min_open=True), metavar="N")
@click.pass_obj
def shred(
    state: State,
    key_id: str | None,
    subject: str | None,
    to: str | None,
    yes: bool,
    max_kms_calls_per_second: float | None,
) -> None:
    """Crypto-shred a data key in backups too: destroy it, move every other data key to a new
    master key only, and print how to retire the old master keys. KEY_ID may be a prefix.

    With --subject ID instead: erase that subject's key (every value of that subject, in every
    column declared with subject=...); other subjects are untouched. Backups: `keys
    rekey-subjects` (docs/rotation.md, "Erasing one subject")."""
    if (key_id is None) == (subject is None):
        raise click.UsageError("name a data key (KEY_ID --to NEW_KEY) or a subject (--subject ID), not both")
    if subject is not None:
        _shred_subject(state, subject, yes)
        return
    if to is None or key_id is None:
        raise click.UsageError("shredding a data key needs --to: the new master key for the others")
    from fieldcrypt.rotation.shred import retirement_steps
    from fieldcrypt.rotation.shred import shred as shred_key

    key_id = _resolve(state, key_id)
    if not yes:
        raise click.UsageError(
            f"shredding data key {key_id} makes every value under it unreadable forever, in backups "
            "too once the old master keys are retired; check `fieldcrypt status` and pass --yes"
        )
    destination = master_key_from(to, region=state.settings.region)
    bucket = TokenBucket(max_kms_calls_per_second) if max_kms_calls_per_second else None
    report = shred_key(state.keyring, key_id, destination, before_call=bucket.acquire if bucket else None)
    sources = {master_key_from(s, region=state.settings.region).key_id: s for s in _configured(state)}
    steps = retirement_steps(report, sources)
    state.out.result(
        report.as_dict() | {"next_steps": steps},
        lambda: state.out.say(
            f"data key {key_id} destroyed; {report.rewrapped} data keys rewrapped under {destination.key_id}, "
            f"{report.removed_copies} old copies removed. Pre-shred backups stay readable until you:\n"
            + "\n".join(f"  {n}. {step}" for n, step in enumerate(steps, 1))
        ),
    )


SUBJECT_BACKUP_STEPS = [
    "backups of the key store still hold the subject's key, wrapped under the keyring's current "
    "subject-wrapping key: to reach them, run `fieldcrypt keys rekey-subjects`, then after "
    "refresh_every `fieldcrypt keys rekey-subjects --finish`, then Runbook 6's master-key move "
    "(`fieldcrypt keys rewrap --to NEW --remove-old`, retire the old master key); "
    'docs/rotation.md, "Erasing one subject"',
]


def _shred_subject(state: State, subject: str, yes: bool) -> None:
    if not yes:
        raise click.UsageError(
            "shredding a subject makes every value of that subject unreadable forever; pass --yes"
        )
    done = state.keyring.shred_subject(subject)
    result = {
        "keyring": done.keyring,
        "subject_tag": done.subject_tag,  # never the id: it may be personal data
        "had_key": done.had_key,
        "already_shredded": done.already_shredded,
        "next_steps": SUBJECT_BACKUP_STEPS,
    }
    said = (
        "was already shredded"
        if done.already_shredded
        else "shredded"
        if done.had_key
        else ("had no key; a tombstone now refuses one")
    )
    state.out.result(
        result,
        lambda: state.out.say(
            f"subject {done.subject_tag} of keyring {done.keyring} {said}.\n  " + SUBJECT_BACKUP_STEPS[0]
        ),
    )


@keys.command("rekey-subjects")
@click.option("--finish", is_flag=True, help="Second run: destroy the old subject-wrapping keys.")
@click.pass_obj
def rekey_subjects(state: State, finish: bool) -> None:
    """Wrap every subject key under a new subject-wrapping key; with --finish (after the keyring's
    refresh_every), destroy the old ones, so shredded subjects' keys in backups stop opening once
    the old master key is retired."""
    report = state.keyring.rekey_subjects(finish=finish)
    result = {
        "keyring": report.keyring,
        "wrapping_key": report.wrapping_key,
        "rewrapped": report.rewrapped,
        "destroyed": report.destroyed,
        "pending": report.pending,
    }
    then = (
        "run it again with --finish once every process has re-read the keyring (refresh_every)"
        if report.pending
        else "now move the keyring to a new master key and retire the old one (Runbook 6)"
    )
    state.out.result(
        result,
        lambda: state.out.say(
            f"{report.rewrapped} subject keys wrapped under {report.wrapping_key}; "
            f"{len(report.destroyed)} old wrapping keys destroyed; {then}"
        ),
    )


def _configured(state: State) -> list[str]:
    """The configured master keys, as written in the settings (``file:PATH``, ARN, ``env:VAR``)."""
    settings = state.settings
    return [s for s in (settings.master_key, *settings.also_decrypt_with) if s]
