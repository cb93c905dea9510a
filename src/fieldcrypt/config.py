"""Configuration of the CLI and of Alembic's env.py: flags, then environment variables, then a TOML file.

Needs no click or rich, so a migrations environment can use it with the ``alembic`` extra alone.

The file (``--config PATH``, ``$FIELDCRYPT_CONFIG``, or ``./fieldcrypt.toml`` when present)::

    [fieldcrypt]
    database_url = "postgresql+psycopg://app@db/app"
    keyring = "pii"
    master_key = "arn:aws:kms:us-east-1:111122223333:key/..."   # or "file:.fieldcrypt/master.key"
    also_decrypt_with = ["file:old.key"]                          # during a move to a new master key
    region = "us-west-2"
    key_store = "dynamodb:fieldcrypt_keys"    # default: the table fieldcrypt_keys in database_url
    dynamodb_endpoint_url = "http://localhost:8000"   # DynamoDB Local, a VPC endpoint, ...
    metadata = "myapp.models:Base.metadata"   # column options read from the Encrypted(...) models
    tenant_keyrings = "myapp.keys:tenant_keyrings"   # the application's TenantKeyrings (or a
                                                    # function returning it), for --tenant

    [columns."users.ssn"]      # per-column options (flags override them)
    codec = "text"
    storage = "binary"
    bind_row = false
    index_column = "ssn_bidx"
    tenant = "tenant_id"       # per-tenant values: the column holding the tenant id (--tenant ID)

Never put key material in it: ``master_key`` names a key (ARN, key file, env variable).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.master import MasterKey
from fieldcrypt.keys.resolve import master_key_from
from fieldcrypt.registry import register
from fieldcrypt.tenants import TenantKeyrings

COLUMN_OPTIONS = frozenset({"codec", "storage", "bind_row", "index_column", "tenant"})

ENV = {
    "database_url": "FIELDCRYPT_DATABASE_URL",
    "keyring": "FIELDCRYPT_KEYRING",
    "namespace": "FIELDCRYPT_NAMESPACE",
    "master_key": "FIELDCRYPT_MASTER_KEY_URI",
    "also_decrypt_with": "FIELDCRYPT_ALSO_DECRYPT_WITH",
    "region": "FIELDCRYPT_REGION",
    "kms_endpoint_url": "FIELDCRYPT_KMS_ENDPOINT_URL",
    "key_store_url": "FIELDCRYPT_KEY_STORE_URL",
    "key_store_table": "FIELDCRYPT_KEY_STORE_TABLE",
    "key_store": "FIELDCRYPT_KEY_STORE",
    "subject_key_store": "FIELDCRYPT_SUBJECT_KEY_STORE",
    "dynamodb_endpoint_url": "FIELDCRYPT_DYNAMODB_ENDPOINT_URL",
    "metadata": "FIELDCRYPT_METADATA",
    "anchor_id": "FIELDCRYPT_ANCHOR_ID",
    "tenant": "FIELDCRYPT_TENANT",
    "tenant_keyrings": "FIELDCRYPT_TENANT_KEYRINGS",
}
DEFAULT_FILE = "fieldcrypt.toml"


@dataclass
class Settings:
    database_url: str | None = None
    keyring: str = "pii"
    # The keyring's namespace (database or tenant id), exactly as the application sets it.
    namespace: str | None = None
    master_key: str | None = None
    also_decrypt_with: list[str] = field(default_factory=list)
    region: str | None = None
    kms_endpoint_url: str | None = None
    key_store_url: str | None = None
    key_store_table: str = "fieldcrypt_keys"
    key_store: str | None = None  # "dynamodb:TABLE", "sql:TABLE" or a SQLAlchemy URL (see key_store_for)
    subject_key_store: str | None = None  # where subject keys live, same forms (default: key_store)
    dynamodb_endpoint_url: str | None = None
    metadata: str | None = None  # "package.module:Base.metadata": column options from the models
    anchor_id: str | None = None  # the keyring's anchor fingerprint, pinned (docs/threat-model.md)
    tenant: str | None = None  # operate on this tenant only, under its keyring (docs/tenants.md)
    tenant_keyrings: str | None = None  # "package.module:attr": the application's TenantKeyrings
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)

    def column(self, target: str) -> dict[str, Any]:
        options = dict(self.columns.get(target, {}))
        unknown = set(options) - COLUMN_OPTIONS
        if unknown:
            # 0.1 called bind_row "row_binding": ignoring it would read and write the column unbound.
            renamed = " (row_binding is now bind_row, as in Encrypted)" if "row_binding" in unknown else ""
            raise ConfigurationError(
                f'unknown options for [columns."{target}"] in the config file: {", ".join(sorted(unknown))}{renamed}'
            )
        return options


def load(config_path: str | None = None, **flags: Any) -> Settings:
    """Settings from ``flags`` (None = not given), else the environment, else the file."""
    file_values, columns = _file(config_path)
    values: dict[str, Any] = {}
    for name, variable in ENV.items():
        if flags.get(name) not in (None, (), []):
            values[name] = flags[name]
        elif os.environ.get(variable):
            values[name] = os.environ[variable]
        elif name in file_values:
            values[name] = file_values[name]
    also = values.get("also_decrypt_with", [])
    if isinstance(also, str):
        also = [part.strip() for part in also.split(",") if part.strip()]
    values["also_decrypt_with"] = list(also)
    unknown = set(file_values) - set(ENV)
    if unknown:
        raise ConfigurationError(f"unknown settings in the config file: {', '.join(sorted(unknown))}")
    return Settings(**values, columns=columns)


def _file(path: str | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    chosen = path or os.environ.get("FIELDCRYPT_CONFIG")
    if chosen is None and Path(DEFAULT_FILE).exists():
        chosen = DEFAULT_FILE
    if chosen is None:
        return {}, {}
    try:
        data = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {chosen}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {chosen} is not valid TOML: {exc}") from None
    return dict(data.get("fieldcrypt", {})), dict(data.get("columns", {}))


def build_keyring(settings: Settings, *, public_key: str | None = None) -> Keyring:
    """The configured keyring, registered under its name (columns resolve it lazily).

    With ``public_key`` (a PEM/DER file of the configured RSA KMS key's public half) it is a
    write-only producer's keyring: no AWS call at all, values written, none read.
    """
    if settings.master_key is None:
        raise ConfigurationError(
            "no master key configured: pass --master-key (a KMS key ARN or file:PATH), set "
            "FIELDCRYPT_MASTER_KEY_URI, or run `fieldcrypt init` for a local development key"
        )
    if settings.kms_endpoint_url:
        os.environ.setdefault("FIELDCRYPT_KMS_ENDPOINT_URL", settings.kms_endpoint_url)
    if public_key is not None:
        master = _producer_key(public_key, settings)
    else:
        master = master_key_from(settings.master_key, region=settings.region)
    others = [master_key_from(s, region=settings.region) for s in settings.also_decrypt_with]
    store = key_store_for(settings)
    keyring = Keyring(
        settings.keyring,
        master,
        store,
        also_decrypt_with=others,
        namespace=settings.namespace,
        anchor_id=settings.anchor_id,
        subject_key_store=(
            None
            if settings.subject_key_store is None
            else key_store_for(replace(settings, key_store=settings.subject_key_store))
        ),
    )
    return register(keyring, replace=True)


def tenant_keyring(settings: Settings, name: str | None = None) -> Keyring:
    """The keyring of ``settings.tenant`` in the TenantKeyrings called ``name`` (default: the
    configured keyring name), as the application supplies it (docs/tenants.md, "Operations").

    Raises:
        ConfigurationError: no tenant given, no such TenantKeyrings, an unusable tenant id.
    """
    if not settings.tenant:
        raise ConfigurationError("no tenant given: pass --tenant ID")
    return tenant_keyrings(settings, name).keyring_for(settings.tenant)


def tenant_keyrings(settings: Settings, name: str | None = None) -> TenantKeyrings:
    """The application's TenantKeyrings called ``name`` (default: the configured keyring name).

    Found in the registry: registered by ``tenant_keyrings`` (``package.module:attr``, a
    TenantKeyrings or a function returning one), or by the models' module on import (``metadata``).

    Raises:
        ConfigurationError: nothing registered under ``name``.
    """
    from fieldcrypt.registry import get_tenant_keyrings

    if settings.tenant_keyrings:
        register(load_tenant_keyrings(settings.tenant_keyrings), replace=True)
    elif settings.metadata:
        load_metadata(settings.metadata)  # the models' module may register its TenantKeyrings
    try:
        found = get_tenant_keyrings(name or settings.keyring)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{exc}; for --tenant, name the application's TenantKeyrings with --tenant-keyrings "
            "package.module:attr (or FIELDCRYPT_TENANT_KEYRINGS, or tenant_keyrings in the config "
            "file), or let the --metadata models' module register it (docs/tenants.md)"
        ) from None
    return found


def load_tenant_keyrings(reference: str) -> TenantKeyrings:
    """The TenantKeyrings ``package.module:attr`` names: the object, or what calling it returns.

    Raises:
        ConfigurationError: it cannot be imported, or is not (and does not return) a TenantKeyrings.
    """
    found = load_metadata(reference)
    if not isinstance(found, TenantKeyrings) and callable(found):
        found = found()
    if not isinstance(found, TenantKeyrings):
        raise ConfigurationError(
            f"tenant_keyrings {reference!r} is a {type(found).__name__}, not a TenantKeyrings "
            "(or a function returning one)"
        )
    return found


def _producer_key(public_key: str, settings: Settings) -> MasterKey:
    from fieldcrypt.keys.kms_rsa import RsaProducerKey

    arn = str(settings.master_key).removeprefix("rsa:")
    if not arn.startswith("arn:") or settings.also_decrypt_with:
        raise ConfigurationError(
            "--public-key needs --master-key set to the ARN of the RSA KMS key it belongs to (the "
            "key store files each wrap under it), and no --also-decrypt-with (a producer reads nothing)"
        )
    return RsaProducerKey.from_file(public_key, arn, region=settings.region)


def key_store_for(settings: Settings) -> Any:
    """The configured key store. ``key_store`` is one of:

    - unset or ``sql``: table ``key_store_table`` in ``key_store_url`` or else ``database_url``;
    - ``sql:TABLE``: that table, in the same database;
    - a SQLAlchemy URL (``postgresql+psycopg://...``): ``key_store_table`` in that database;
    - ``dynamodb:TABLE`` or ``dynamodb://TABLE``: a DynamoDB table in ``region`` (through
      ``dynamodb_endpoint_url`` when set), as docs/dynamodb.md creates it.
    """
    kind, table, url = parse_key_store(settings.key_store)
    if kind == "dynamodb":
        from fieldcrypt.stores.dynamodb import DynamoDBKeyStore

        return DynamoDBKeyStore(
            table or settings.key_store_table,
            region=settings.region,
            endpoint_url=settings.dynamodb_endpoint_url,
        )
    from fieldcrypt.stores.sql import SqlKeyStore

    database = url or settings.key_store_url or _database_url(settings)
    return SqlKeyStore(engine_for(database), table=table or settings.key_store_table)


def parse_key_store(text: str | None) -> tuple[str, str | None, str | None]:
    """``(kind, table, url)`` of a key-store setting; kind is ``sql`` or ``dynamodb``.

    Raises:
        ConfigurationError: not one of the forms :func:`key_store_for` lists.
    """
    if not text or text == "sql":
        return "sql", None, None
    scheme, colon, rest = text.partition(":")
    if scheme == "dynamodb" and colon:
        table = rest.removeprefix("//")
        if table and "/" not in table:
            return "dynamodb", table, None
    elif scheme == "sql" and colon and rest:
        return "sql", rest, None
    elif "://" in text:
        return "sql", None, text
    raise ConfigurationError(
        f"key store {text!r} is not understood: use dynamodb:TABLE, sql:TABLE or a database URL "
        "(e.g. postgresql+psycopg://user@host/db); unset, the key store is fieldcrypt_keys in "
        "the database of --database-url"
    )


def load_metadata(reference: str) -> Any:
    """Import ``package.module:attribute.path`` (a MetaData or Table of the application's models;
    also the application's TenantKeyrings)."""
    import importlib

    module_name, colon, attributes = reference.partition(":")
    if not colon or not module_name or not attributes:
        raise ConfigurationError(
            f"write package.module:attribute (e.g. myapp.models:Base.metadata), not {reference!r}"
        )
    try:
        found: Any = importlib.import_module(module_name)
        for attribute in attributes.split("."):
            found = getattr(found, attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load metadata {reference!r}: {exc}") from None
    return found


def database_engine(settings: Settings) -> Any:
    return engine_for(_database_url(settings))


def _database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise ConfigurationError(
            "no database configured: pass --database-url or set FIELDCRYPT_DATABASE_URL "
            "(e.g. postgresql+psycopg://user@host/db)"
        )
    return settings.database_url


_engines: dict[str, Any] = {}


def engine_for(url: str) -> Any:
    import sqlalchemy as sa

    if url not in _engines:
        try:
            _engines[url] = sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ConfigurationError(f"cannot use database URL: {exc}") from None
    return _engines[url]
