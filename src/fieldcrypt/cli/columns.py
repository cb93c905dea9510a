"""``encrypt-column``, ``reencrypt``, ``decrypt-column``, ``reindex`` and ``rebind`` on TABLE.COLUMN
(SQL, through the batch engine); ``encrypt-column``, ``reencrypt`` and ``rebind`` of ``dynamodb:TABLE.ATTRIBUTE`` are
delegated to fieldcrypt.cli.dynamodb."""

from __future__ import annotations

import concurrent.futures
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import click

from fieldcrypt import codecs, config
from fieldcrypt.cli import sqltypes
from fieldcrypt.cli.context import State
from fieldcrypt.cli.output import EXIT_INCOMPLETE
from fieldcrypt.errors import ConfigurationError
from fieldcrypt.rotation import engine, inspect, schema
from fieldcrypt.rotation.rowkeys import one_tenant
from fieldcrypt.rotation.spec import ColumnSpec, Storage
from fieldcrypt.rotation.table import Segment
from fieldcrypt.tenant_rows import TenantRows
from fieldcrypt.tenants import TenantKeyrings

TARGET_HELP = "TARGET is TABLE.COLUMN (SQL) or dynamodb:TABLE.ATTRIBUTE."
SEGMENT_OPTION = click.option(
    "--segment",
    metavar="i/N|auto",
    help="Only segment i of N (0-based; N jobs share a table). auto: from a Kubernetes Indexed Job "
    "(JOB_COMPLETION_INDEX, FIELDCRYPT_SEGMENT_COUNT) or an AWS Batch array job "
    "(AWS_BATCH_JOB_ARRAY_INDEX, AWS_BATCH_JOB_ARRAY_SIZE); see docs/scale.md.",
)
WORKERS_OPTION = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads, each a sub-segment of this job's segment.",
)


def _column_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("target"),
        click.option(
            "--codec",
            type=click.Choice(codecs.NAMES),
            help="How values become bytes (without --metadata; needed to read values).",
        ),
        click.option(
            "--storage", type=click.Choice([s.value for s in Storage]), help="binary or text [binary]."
        ),
        click.option("--bind-row/--no-bind-row", default=None, help="Values are bound to their row's key."),
        click.option(
            "--tenant-column",
            metavar="NAME",
            help="The column (attribute) holding the tenant id, for --tenant (without --metadata).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@dataclass(frozen=True)
class JobOptions:
    """The ``--segment``/``--workers``/``--tenant`` of one job, as every column command reads them."""

    segment: Segment
    workers: int
    tenant: str | None  # the canonical tenant id with --tenant

    @property
    def scope(self) -> str:
        """What the job's progress line and summary add for --tenant."""
        return "" if self.tenant is None else f", tenant {self.tenant}"

    def tag(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` (a JSON result) with the tenant it covers, under --tenant."""
        return data if self.tenant is None else data | {"tenant": self.tenant}


def job_options(
    state: State, segment: str | None, workers: int, tenant: TenantRows | None = None
) -> JobOptions:
    """One job's segment (``i/N``, ``auto``; the whole table by default), worker threads and tenant
    (``tenant``'s, or with --tenant the tenant of the keyring it chose)."""
    if tenant is not None:
        chosen: str | None = tenant.tenant
    else:
        chosen = state.keyring.tenant if state.settings.tenant else None
    return JobOptions(Segment.parse(segment or "0/1"), workers, chosen)


def _batch_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True),
        SEGMENT_OPTION,
        WORKERS_OPTION,
        click.option("--max-kms-calls-per-second", type=click.FloatRange(min=0, min_open=True), metavar="N"),
        click.option("--dry-run", is_flag=True, help="Count the rows that would change; write nothing."),
        click.option("--checkpoint-dir", metavar="DIR", help="Resume position files (resume after a crash)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _spec(
    state: State,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    tenant_column: str | None = None,
) -> tuple[ColumnSpec, TenantRows | None]:
    """The column's options: from the models (--metadata), else from flags and the config file,
    where nothing defaults the codec: commands that read values refuse to run without it (the
    config file may name the column's ``tenant`` and ``subject`` columns). With --tenant, the
    spec's keyring is the tenant's and the rows are the tenant's (:func:`_for_tenant`)."""
    table, dot, column = target.rpartition(".")
    if not dot or not table or not column:
        raise ConfigurationError(
            f"a column is written TABLE.COLUMN (or dynamodb:TABLE.ATTRIBUTE), not {target!r}"
        )
    if state.settings.metadata:
        if codec or storage or bind_row is not None:
            raise ConfigurationError(
                "with --metadata the column options come from the model; drop --codec/--storage/--bind-row"
            )
        if not state.settings.tenant:
            state.keyring  # noqa: B018 - registers the configured keyring the model names
        from fieldcrypt.sqlalchemy.spec import column_spec

        spec = column_spec(table, column, config.load_metadata(state.settings.metadata))
        return _for_tenant(state, spec, tenant_column)
    configured = state.settings.column(target)
    tenant_column = tenant_column or configured.get("tenant")
    if tenant_column is not None and not state.settings.tenant:
        _for_tenant(
            state, ColumnSpec(table, column, keyring=state.settings.keyring), tenant_column
        )  # refuses
    spec = ColumnSpec(
        table,
        column,
        keyring=state.keyring,
        codec=codec or configured.get("codec"),
        storage=storage or configured.get("storage", "binary"),
        bind_row=bind_row if bind_row is not None else bool(configured.get("bind_row", False)),
        index_column=configured.get("index_column"),
        subject_column=configured.get("subject"),
    )
    return _for_tenant(state, spec, tenant_column)


def _for_tenant(
    state: State, spec: ColumnSpec, tenant_column: str | None
) -> tuple[ColumnSpec, TenantRows | None]:
    """``spec`` for the ``--tenant`` given: under that tenant's keyring, with its rows.

    Raises:
        ConfigurationError: --tenant for a column with no tenant column, or a per-tenant column
            without --tenant (one tenant's keyring cannot read another's values).
    """
    tenant = state.settings.tenant
    where = f"{spec.table}.{spec.column}"
    tenant_column = tenant_column or spec.tenant_column  # --tenant-column, else the model's
    if tenant_column is None:
        if tenant:
            raise ConfigurationError(
                f"{where}: --tenant needs the column holding the tenant id: declare "
                "Encrypted(..., tenant=...) and pass --metadata, or pass --tenant-column NAME"
            )
        return spec, None
    if not tenant:
        raise ConfigurationError(
            f"{where} is encrypted per tenant (tenant column {tenant_column}): pass --tenant ID, one "
            "run per tenant (`fieldcrypt keys tenants` lists the tenants with keys)"
        )
    keyring = spec.keyring
    if isinstance(keyring, str):
        keyring = config.tenant_keyring(state.settings, keyring)
    elif isinstance(keyring, TenantKeyrings):
        keyring = keyring.keyring_for(tenant)
    return one_tenant(replace(spec, tenant_column=tenant_column), keyring)


def dynamodb_tenant(state: State, target: str, tenant_column: str | None) -> TenantRows | None:
    """The items of ``--tenant`` in ``dynamodb:TABLE.ATTRIBUTE`` (None without --tenant); the
    tenant attribute comes from --tenant-column or the target's ``tenant`` in the config file.

    Raises:
        ConfigurationError: --tenant without a tenant attribute, or a tenant attribute without --tenant.
    """
    column = tenant_column or state.settings.column(target).get("tenant")
    if state.settings.tenant and column is None:
        raise ConfigurationError(
            f"{target}: --tenant needs the attribute holding the tenant id: pass --tenant-column "
            f'NAME, or set tenant = "NAME" under [columns."{target}"] in the config file'
        )
    if column is None:
        return None
    if not state.settings.tenant:
        raise ConfigurationError(f"{target} is encrypted per tenant (attribute {column}): pass --tenant ID")
    tenant = state.keyring.tenant
    assert tenant is not None  # --tenant gives a tenant's keyring
    return TenantRows(column, tenant)


def _adoption_spec(state: State, spec: ColumnSpec) -> ColumnSpec:
    """For encrypt-column: the codec read from the plaintext column when none was given, and a
    refusal when the one given contradicts the column's type."""
    from fieldcrypt.sqlalchemy.spec import check_column_type
    from fieldcrypt.storage import sql as sql_storage

    with state.engine.connect() as conn:
        if spec.codec is None:
            found = schema.column_info(conn, spec.table, spec.column)["type"]
            spec = replace(spec, codec=sql_storage.codec_for(found))
            # MySQL and MariaDB store a BOOLEAN as TINYINT(1): an int or a bool column alike.
            ambiguous = type(found).__name__ == "TINYINT" and getattr(found, "display_width", None) == 1
            if spec.the_codec.name == "bytes" or ambiguous:
                raise ConfigurationError(
                    f"{spec.table}.{spec.column} is {found!r}: its values' type cannot be read from "
                    "the column alone; pass --metadata module:Base (the models) or --codec"
                )
        check_column_type(conn, spec)
    return spec


def _run(
    state: State, action: str, spec: ColumnSpec, options: dict[str, Any], tenant: TenantRows | None = None
) -> None:
    job = job_options(state, options.pop("segment"), options.pop("workers"), tenant)
    done: dict[int, engine.Report] = {}
    title = f"{action} {spec.table}.{spec.column} (segment {job.segment}{job.scope})"
    with state.out.progress(title) as meter:

        def progress(n: int, report: engine.Report) -> None:
            done[n] = report
            if len(done) == job.workers:  # every worker has reported: the resumed position is known
                meter.start_at(sum(r.resumed_rows for r in done.values()))
            position = sum(r.resumed_rows + r.scanned for r in done.values())
            meter(position, sum(r.total for r in done.values()) or None)

        with concurrent.futures.ThreadPoolExecutor(max_workers=job.workers) as pool:
            futures = [
                pool.submit(
                    engine.run,
                    state.engine,
                    spec,
                    action,
                    segment=s,
                    progress=functools.partial(progress, n),
                    tenant=tenant,
                    **options,
                )
                for n, s in enumerate(job.segment.split(job.workers))
            ]
            reports = [f.result() for f in futures]
    total = job.tag(_combine(reports, str(job.segment)))
    state.out.result(total, lambda: _say_report(state, total))
    if total["failed"] or total["conflicts"]:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


def _combine(reports: list[engine.Report], segment: str) -> dict[str, Any]:
    first = reports[0].as_dict()
    combined = first | {"segment": segment}
    fields = (
        "total",
        "scanned",
        "to_change",
        "written",
        "conflicts",
        "failed",
        "shredded",
        "retries",
        "batches",
    )
    for field in (*fields, "resumed_rows"):
        combined[field] = sum(getattr(r, field) for r in reports)
    combined["failures"] = [f for r in reports for f in r.as_dict()["failures"]]
    combined["seconds"] = max(r.seconds for r in reports)
    combined["complete"] = all(r.complete for r in reports)
    return combined


def _say_report(state: State, r: dict[str, Any]) -> None:
    verb = "would change" if r["dry_run"] else "wrote"
    count = r["to_change"] if r["dry_run"] else r["written"]
    scope = f", tenant {r['tenant']}" if "tenant" in r else ""
    state.out.say(
        f"{r['action']} {r['table']}.{r['column']} (segment {r['segment']}{scope}): scanned {r['scanned']}, "
        f"{verb} {count}, failed {r['failed']}, conflicts {r['conflicts']}, KMS retries {r['retries']}, "
        f"{r['seconds']:.1f}s"
    )
    if r["shredded"]:
        state.out.say(f"  {r['shredded']} values of shredded subjects left as they are (erased, not failed)")
    for failure in r["failures"][:20]:
        state.out.say(f"  row {failure['row']}: {failure['error']}")


def _dynamodb() -> Any:
    from fieldcrypt.cli import dynamodb

    return dynamodb


@click.command("encrypt-column")
@_column_options
@_batch_options
@click.option("--widen/--no-widen", default=True, show_default=True, help="Widen the column type first.")
@click.option(
    "--kind",
    type=click.Choice(["S", "N", "B", "BOOL", "M", "L"]),
    help="dynamodb: targets: the DynamoDB type of the plaintext values (as the EncryptedField or "
    "model declares it) [S].",
)
@click.option(
    "--index-attribute",
    metavar="NAME",
    help="dynamodb: targets: also write each value's blind-index token to NAME (a searchable attribute).",
)
@click.option(
    "--from",
    "from_",
    metavar="SOURCE",
    help="Values are another library's ciphertexts: sqlalchemy-utils:aes-gcm, "
    "sqlalchemy-utils:aes-cbc[:PADDING] or fernet (keys from --from-key-env).",
)
@click.option(
    "--from-key-env",
    metavar="VAR",
    default="FIELDCRYPT_FROM_KEY",
    show_default=True,
    help="Environment variable holding the old key (Fernet: keys, comma-separated, newest first).",
)
@click.pass_obj
def encrypt_column(
    state: State,
    /,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    tenant_column: str | None,
    widen: bool,
    from_: str | None,
    from_key_env: str,
    kind: str | None,
    index_attribute: str | None,
    **options: Any,
) -> None:
    """Encrypt a plaintext column in place (widening its type), batch by batch; with --from,
    re-encrypt another library's ciphertexts read with the old key. A dynamodb:TABLE.ATTRIBUTE
    target is encrypted item by item with conditional writes (--kind, --index-attribute)."""
    from dataclasses import replace

    if target.startswith("dynamodb:"):
        if from_ is not None or codec or storage or bind_row is not None:
            raise ConfigurationError(
                "dynamodb: targets take --kind and --index-attribute, not --from/--codec/--storage/--bind-row"
            )
        run = functools.partial(_dynamodb().run_encrypt, kind=kind or "S", index_attribute=index_attribute)
        _dynamodb_job(state, "encrypt", target, options, run)
        return
    if kind is not None or index_attribute is not None:
        raise ConfigurationError("--kind and --index-attribute are for dynamodb:TABLE.ATTRIBUTE targets")

    spec, tenant = _spec(state, target, codec, storage, bind_row, tenant_column)
    spec = _adoption_spec(state, spec)
    if from_ is not None:
        spec = replace(spec, from_=foreign_source(from_, os.environ.get(from_key_env, "")))
    if not options["dry_run"]:  # a dry run writes nothing, not even a first data key
        inspect.check_can_encrypt(spec)  # before the widening, which stays if a later step fails
    inspect.check_storage(state.engine, spec)
    if widen and not options["dry_run"]:
        with state.engine.begin() as conn:
            schema.widen(conn, spec.table, spec.column, spec.the_storage)
    _run(state, "encrypt", spec, options, tenant)


@click.command()
@_column_options
@_batch_options
@click.pass_obj
def reencrypt(
    state: State,
    /,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    tenant_column: str | None,
    **options: Any,
) -> None:
    """Move every value to the keyring's current data key (online, resumable, idempotent).

    With --tenant, only that tenant's rows, onto its keyring's current data key."""
    if target.startswith("dynamodb:"):
        _reencrypt_dynamodb(state, target, options, dynamodb_tenant(state, target, tenant_column))
        return
    spec, tenant = _spec(state, target, codec, storage, bind_row, tenant_column)
    _run(state, "reencrypt", spec, options, tenant)


# The count a DynamoDB job's summary leads with, and how it is said in a dry run and a real one.
_DYNAMODB_VERBS = {
    "reencrypt": ("reencrypted", "would re-encrypt", "re-encrypted"),
    "rebind": ("rebound", "would re-bind", "re-bound"),
    "encrypt": ("encrypted", "would encrypt", "encrypted"),
}
# The other counts the summary names (label, count).
_ALSO = (("already current", "current"), ("plaintext", "plaintext"))
_DYNAMODB_ALSO = {"encrypt": (("already encrypted", "already_encrypted"),)}


def _reencrypt_dynamodb(
    state: State, target: str, options: dict[str, Any], tenant: TenantRows | None
) -> None:
    _dynamodb_job(state, "reencrypt", target, options, _dynamodb().run_reencrypt, tenant)


def _dynamodb_job(
    state: State,
    action: str,
    target: str,
    options: dict[str, Any],
    run: Callable[..., dict[str, Any]],
    tenant: TenantRows | None = None,
) -> None:
    """Run a segmented DynamoDB job (``run``: fieldcrypt.cli.dynamodb's), with progress and a
    one-line summary; exit 1 when items failed or lost every race. ``tenant``: its items only."""
    job = job_options(state, options["segment"], options["workers"], tenant)
    with state.out.progress(f"{action} {target} (segment {job.segment}{job.scope})") as meter:
        result = run(
            target,
            keyring=state.keyring,
            tenant=tenant,
            segment=(job.segment.index, job.segment.count),
            workers=job.workers,
            batch_size=options["batch_size"],
            max_kms_calls_per_second=options["max_kms_calls_per_second"],
            dry_run=options["dry_run"],
            endpoint_url=state.settings.dynamodb_endpoint_url,
            region=state.settings.region,
            checkpoint_dir=options["checkpoint_dir"],
            progress=lambda n: meter(n, None),
            resumed=meter.start_at,  # the rate counts this run's items only
        )
    done, would, did = _DYNAMODB_VERBS[action]

    def human() -> None:
        verb = would if result["dry_run"] else did
        others = ", ".join(f"{label} {result[name]}" for label, name in _DYNAMODB_ALSO.get(action, _ALSO))
        state.out.say(
            f"{action} {target} (segment {result['segment']}): scanned {result['scanned']}, {verb} "
            f"{result[done]}, {others}, failed {result['failed']}, conflicts {result['conflicts']} "
            f"({result['conflicts_unresolved']} unresolved)"
        )
        for failure in result.get("failures", [])[:20]:
            state.out.say(f"  item {failure['row']}: {failure['error']}")

    state.out.result(result, human)
    if result["failed"] or result["conflicts_unresolved"]:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


@click.command("decrypt-column")
@_column_options
@_batch_options
@click.option(
    "--restore-type", metavar="SQL_TYPE", help="Give the column this type afterwards, e.g. 'VARCHAR(11)'."
)
@click.pass_obj
def decrypt_column(
    state: State,
    /,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    tenant_column: str | None,
    restore_type: str | None,
    **options: Any,
) -> None:
    """Decrypt every value back to plaintext in place (the downgrade of encrypt-column)."""
    restored = sqltypes.parse(restore_type) if restore_type else None  # refused before any work
    spec, tenant = _spec(state, target, codec, storage, bind_row, tenant_column)
    if tenant is not None and restored is not None:
        raise ConfigurationError("--restore-type changes the whole column: not with --tenant")
    _run(state, "decrypt", spec, dict(options), tenant)  # exits 1 (and skips the type change) if rows remain
    if restored is not None and not options["dry_run"]:
        with state.engine.begin() as conn:
            schema.narrow(conn, spec.table, spec.column, restored, spec.the_storage)


@click.command()
@_column_options
@_batch_options
@click.option("--index-column", metavar="NAME", help="The blind-index column [COLUMN_bidx].")
@click.option(
    "--retire-old/--keep-old",
    default=False,
    help="Afterwards retire the older blind-index keys that no column uses any more.",
)
@click.pass_obj
def reindex(
    state: State,
    /,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    tenant_column: str | None,
    index_column: str | None,
    retire_old: bool,
    **options: Any,
) -> None:
    """Recompute a blind-index column under the newest blind-index key (after
    `keys rotate --purpose blind_index` and one refresh interval); queries match both until then."""
    from fieldcrypt.rotation import admin

    spec, tenant = _spec(state, target, codec, storage, bind_row, tenant_column)
    spec = replace(spec, index_column=index_column or spec.index_column or f"{spec.column}_bidx")
    _run(state, "reindex", spec, options, tenant)
    if retire_old and not options["dry_run"]:
        retired, kept = admin.retire_unused_index_keys(state.keyring)
        for key_id in retired:
            state.out.say(f"blind-index key {key_id} retired")
        for key_id, users in kept.items():
            state.out.say(
                f"blind-index key {key_id} kept: still used by {', '.join(users)} (reindex them first)"
            )


@click.command()
@_column_options
@_batch_options
@click.option(
    "--from",
    "from_",
    metavar="OLD_TABLE.OLD_COLUMN",
    help="The names the values are still bound to (the model's bound_as); required for dynamodb: targets.",
)
@click.pass_obj
def rebind(
    state: State,
    /,
    target: str,
    codec: str | None,
    storage: str | None,
    bind_row: bool | None,
    tenant_column: str | None,
    from_: str | None,
    **options: Any,
) -> None:
    """After a rename (or a DynamoDB table copied under a new name), move every value still bound
    to the old names to its own place (online, resumable, idempotent); then drop bound_as."""
    if target.startswith("dynamodb:"):
        if not from_:
            raise ConfigurationError(
                f"rebind {target}: name the old table and attribute with --from OLD_TABLE.OLD_ATTRIBUTE"
            )
        tenant = dynamodb_tenant(state, target, tenant_column)
        run = functools.partial(_dynamodb().run_rebind, from_=from_)
        _dynamodb_job(state, "rebind", target, options, lambda t, **kw: run(t, **kw), tenant)
        return
    spec, rows = _spec(state, target, codec, storage, bind_row, tenant_column)
    _run(state, "rebind", _rebind_spec(spec, from_), options, rows)


def _rebind_spec(spec: ColumnSpec, from_: str | None) -> ColumnSpec:
    """The spec with its old place: --from, or the model's bound_as (which --from must match)."""
    from dataclasses import replace

    if from_ is None:
        if spec.bound_as is None:
            raise ConfigurationError(
                f"rebind {spec.table}.{spec.column}: name the old table and column with --from "
                "OLD_TABLE.OLD_COLUMN (or pass --metadata with the model's bound_as)"
            )
        return spec
    table, dot, column = from_.rpartition(".")
    if not dot or not table or not column:
        raise ConfigurationError(f"--from is OLD_TABLE.OLD_COLUMN, not {from_!r}")
    if spec.bound_as is not None and spec.bound_as != (table, column):
        raise ConfigurationError(
            f"--from {from_} contradicts the model's bound_as={spec.bound_as!r} for {spec.table}.{spec.column}"
        )
    return replace(spec, bound_as=(table, column))


def foreign_source(name: str, keys: str) -> Any:
    """The adoption source ``--from NAME`` names, with the key(s) read from the environment.

    Raises:
        ConfigurationError: an unknown source, or no key.
    """
    from fieldcrypt import foreign

    if not keys:
        raise ConfigurationError("--from needs the old key in the environment (see --from-key-env)")
    kind, _, rest = name.partition(":")
    if kind == "fernet" and not rest:
        return foreign.Fernet([k.strip() for k in keys.split(",") if k.strip()])
    if kind == "sqlalchemy-utils":
        engine, _, padding = rest.partition(":")
        if engine in ("aes-gcm", "aes-cbc"):
            return foreign.SqlalchemyUtils(keys, engine=engine, padding=padding or "naive")  # type: ignore[arg-type]
    raise ConfigurationError(
        f"--from {name!r}: use sqlalchemy-utils:aes-gcm, sqlalchemy-utils:aes-cbc[:PADDING] or fernet"
    )
