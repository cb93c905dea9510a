"""Shared fixtures: real PostgreSQL and MariaDB on loopback, SQLite files, and moto's server mode.

A missing service fails the run loudly (no skips): PostgreSQL and MariaDB run on every
development and CI machine of this project (see README, "Running the tests").
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from botocore.config import Config
from hypothesis import settings

import fieldcrypt
from fieldcrypt import registry

# The servers' URLs; the database named in them is only used to create the suite's own database.
PG_SERVER_URL = os.environ.get("FIELDCRYPT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_SERVER_URL = os.environ.get(
    "FIELDCRYPT_TEST_MARIADB_URL", "mariadb+pymysql://root@127.0.0.1:3306/test"
)
# Tests empty the database they work in, so they work in one of their own, never in `test`.
# Set FIELDCRYPT_TEST_DB to run two suites side by side on one machine.
TEST_DB = os.environ.get("FIELDCRYPT_TEST_DB", "fieldcrypt_test")
if not TEST_DB.replace("_", "").isalnum() or TEST_DB.lower() in {"test", "postgres", "mysql"}:
    raise RuntimeError(
        f"FIELDCRYPT_TEST_DB must be a fresh identifier-like name of the suite's own, got {TEST_DB!r}"
    )
ACCOUNT = "123456789012"  # moto's default account

# Hypothesis: CI derandomizes (a red run must be reproducible and never depend on luck); local
# runs explore more, at random.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
# botocore must never reach a real endpoint or the instance-metadata address from a test.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_DYNAMODB"):
    os.environ.pop(_var, None)


# --- databases -------------------------------------------------------------------------------


def _drop_everything(engine: sa.Engine) -> None:
    meta = sa.MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)


_created: set[str] = set()


def _server_engine(server_url: str) -> sa.Engine:
    """An engine on the suite's own database of this server, created first if missing."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        if server_url not in _created:
            with admin.connect() as conn:
                if admin.dialect.name == "postgresql":
                    exists = conn.execute(
                        sa.text("select 1 from pg_database where datname = :n"), {"n": TEST_DB}
                    ).scalar()
                    if not exists:
                        conn.execute(sa.text(f'CREATE DATABASE "{TEST_DB}"'))
                else:
                    conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{TEST_DB}`"))
            _created.add(server_url)
    except Exception as exc:  # the suite must fail, not skip, when a required server is missing
        pytest.fail(
            f"required database server {admin.url.render_as_string(hide_password=True)} is unreachable "
            f"or refused CREATE DATABASE {TEST_DB}: {exc}. Start it (see README, 'Running the tests') "
            "or point FIELDCRYPT_TEST_PG_URL / FIELDCRYPT_TEST_MARIADB_URL at one.",
            pytrace=False,
        )
    finally:
        admin.dispose()
    return sa.create_engine(sa.make_url(server_url).set(database=TEST_DB), pool_pre_ping=True)


@pytest.fixture
def sqlite_engine(tmp_path: Any) -> Iterator[sa.Engine]:
    """A SQLite file database (a file, not :memory:, so separate connections share it)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'test.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[sa.Engine]:
    """The suite's own PostgreSQL database, emptied before and after the test."""
    engine = _server_engine(PG_SERVER_URL)
    _drop_everything(engine)
    yield engine
    _drop_everything(engine)
    engine.dispose()


@pytest.fixture
def mariadb_engine() -> Iterator[sa.Engine]:
    """The suite's own MariaDB database, emptied before and after the test."""
    engine = _server_engine(MARIADB_SERVER_URL)
    _drop_everything(engine)
    yield engine
    _drop_everything(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    """Each of the three databases in turn."""
    return request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else request.param}_engine")  # type: ignore[no-any-return]


@pytest.fixture
def own_schemas() -> Iterator[Callable[[sa.Engine, str], str]]:
    """``own_schemas(engine, name)``: a fresh schema (PostgreSQL) or database (MariaDB), dropped
    after the test; tests name theirs ``<FIELDCRYPT_TEST_DB>_...`` so two suites never share one."""
    made: list[tuple[sa.Engine, str]] = []

    def make(engine: sa.Engine, name: str) -> str:
        with engine.begin() as conn:
            conn.exec_driver_sql(_DROP_SCHEMA[engine.dialect.name].format(f"IF EXISTS {name}"))
            conn.exec_driver_sql(f"{_CREATE_SCHEMA[engine.dialect.name]} {name}")
        made.append((engine, name))
        return name

    yield make
    for engine, name in reversed(made):
        with engine.begin() as conn:
            conn.exec_driver_sql(_DROP_SCHEMA[engine.dialect.name].format(name))


_CREATE_SCHEMA = {"postgresql": "CREATE SCHEMA", "mysql": "CREATE DATABASE", "mariadb": "CREATE DATABASE"}
_DROP_SCHEMA = {
    "postgresql": "DROP SCHEMA {} CASCADE",
    "mysql": "DROP DATABASE {}",
    "mariadb": "DROP DATABASE {}",
}


# --- keyrings --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    """Each test starts and ends with no registered keyrings."""
    for name in [*registry.registered(), *registry.registered_tenant_keyrings()]:
        registry.unregister(name)
    yield
    for name in [*registry.registered(), *registry.registered_tenant_keyrings()]:
        registry.unregister(name)


@pytest.fixture
def recorder() -> Iterator[Any]:
    """fieldcrypt's metrics, recorded by an SDK meter provider with an in-memory reader."""
    from metrics_helpers import recording

    with recording() as recorder:
        yield recorder


@pytest.fixture
def local_keyring() -> fieldcrypt.Keyring:
    """A keyring named "pii" with a fresh local master key and an in-memory key store."""
    return fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())


# --- moto server (KMS, DynamoDB) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server mode on 127.0.0.1 (a random free port), spoken to over real HTTP.

    Started by the shipped helper, so the suite runs with exactly the moto fixes users get
    (multi-region key ids, RSA Decrypt; see fieldcrypt.testing.moto_shims).
    """
    from fieldcrypt.testing import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_client(moto_endpoint: str) -> Callable[..., Any]:
    """Make a boto3 client for moto: ``aws_client("kms", "us-west-2")``, standard retries."""

    def make(service: str, region: str = "us-east-1", **config: Any) -> Any:
        retries = config.pop("retries", {"mode": "standard", "max_attempts": 5})
        return boto3.session.Session().client(
            service,
            region_name=region,
            endpoint_url=moto_endpoint,
            config=Config(retries=retries, **config),
        )

    return make


@pytest.fixture
def kms_key(aws_client: Callable[..., Any]) -> str:
    """A fresh single-region symmetric KMS key in us-east-1; returns its ARN."""
    meta = aws_client("kms", "us-east-1").create_key(Description=f"fieldcrypt test {uuid.uuid4()}")
    return str(meta["KeyMetadata"]["Arn"])


@pytest.fixture
def mrk(aws_client: Callable[..., Any]) -> dict[str, str]:
    """A multi-region key made in us-east-1 and replicated to us-west-2: {region: ARN}."""
    primary = aws_client("kms", "us-east-1").create_key(MultiRegion=True)["KeyMetadata"]
    # ReplicateKey takes only the bare key id on moto (an ARN gives HTTP 500).
    replica = aws_client("kms", "us-east-1").replicate_key(KeyId=primary["KeyId"], ReplicaRegion="us-west-2")
    return {"us-east-1": primary["Arn"], "us-west-2": replica["ReplicaKeyMetadata"]["Arn"]}


class RequestLog:
    """Every AWS request a client made: (service operation, region, every ARN in the params)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    def attach(self, client: Any) -> Any:
        region = client.meta.region_name

        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            arns = [v for v in params.values() if isinstance(v, str) and v.startswith("arn:")]
            self.calls.append((model.name, region, arns))

        client.meta.events.register("before-parameter-build.*.*", record)
        return client

    def operations(self) -> list[str]:
        return [name for name, _, _ in self.calls]


@pytest.fixture
def request_log() -> RequestLog:
    """Records the requests of clients attached to it (for counting and region checks)."""
    return RequestLog()


@pytest.fixture
def rsa_mrk(aws_client: Callable[..., Any]) -> dict[str, str]:
    """An RSA_3072 ENCRYPT_DECRYPT multi-region key in us-east-1, replicated to us-west-2: {region: ARN}."""
    primary = aws_client("kms", "us-east-1").create_key(
        KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT", MultiRegion=True
    )["KeyMetadata"]
    replica = aws_client("kms", "us-east-1").replicate_key(KeyId=primary["KeyId"], ReplicaRegion="us-west-2")
    return {"us-east-1": primary["Arn"], "us-west-2": replica["ReplicaKeyMetadata"]["Arn"]}


PRODUCER_DENIED = ("Decrypt", "ReEncrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext")


def _deny_kms(client: Any, operations: tuple[str, ...] = PRODUCER_DENIED) -> list[str]:
    from botocore.exceptions import ClientError

    refused: list[str] = []

    def deny(model: Any, **_: Any) -> None:
        refused.append(model.name)
        error = {"Code": "AccessDeniedException", "Message": f"producer role: no kms:{model.name}"}
        raise ClientError({"Error": error}, model.name)

    for operation in operations:
        client.meta.events.register(f"before-call.kms.{operation}", deny)
    return refused


@pytest.fixture
def deny_kms() -> Callable[..., list[str]]:
    """``deny_kms(client)`` makes a KMS client refuse Decrypt, ReEncrypt, Encrypt and GenerateDataKey*
    with AccessDenied before sending, as a producer role's IAM policy would; it returns the list
    of refused attempts (empty if the code never tried)."""
    return _deny_kms
