"""docs/rotation.md Runbooks 7-9 against moto: imported material, a key moved to another region, another account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from cli_helpers import invoke, payload
from click.testing import Result

import fieldcrypt
from fieldcrypt import config as cli_config
from fieldcrypt.keys.kms import KmsMasterKey
from fieldcrypt.stores.sql import SqlKeyStore

PLACE = fieldcrypt.Place("users", "ssn")
# Not "pii": a model declared elsewhere in the session with a searchable "pii" column makes every
# SQLite write transaction prepare a blind-index key in whatever keyring is registered as "pii".
KEYRING = "runbook"
SSNS = [f"123-45-{i:04d}" for i in range(5)]


@pytest.fixture
def store(sqlite_engine: sa.Engine, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> SqlKeyStore:
    """The key store in a SQLite file; the CLI pointed at it and at moto's KMS."""
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", moto_endpoint)
    key_store = SqlKeyStore(sqlite_engine)
    key_store.create_table()
    return key_store


def command(*args: str) -> Result:
    """One fieldcrypt command, as its own process would run it: no engine (and no keyring hooked
    on one) left from the previous command."""
    cli_config._engines.clear()
    return invoke("--keyring", KEYRING, *args, json_output=True)


def written_under(arn: str, client: Any, url: sa.URL) -> list[bytes]:
    """Values written by an application on ``arn`` across two data keys (a rotation in between).

    On an engine of its own, disposed of afterwards: the application has stopped, and its
    keyring's SQLite write hook must not go on acting in the steps that follow.
    """
    engine = sa.create_engine(url)
    keyring = fieldcrypt.Keyring(KEYRING, KmsMasterKey(arn, client=client), SqlKeyStore(engine))
    values = [keyring.encrypt(s, PLACE) for s in SSNS[:2]]
    keyring.rotate()
    values += [keyring.encrypt(s, PLACE) for s in SSNS[2:]]
    engine.dispose()
    return values


def refuse_key(client: Any, arn: str) -> list[str]:
    """Deny every request of ``client`` naming ``arn`` (moto would still serve a disabled key)."""
    from botocore.exceptions import ClientError

    refused: list[str] = []

    def deny(model: Any, params: dict[str, Any], **_: Any) -> None:
        if arn in params.values():
            refused.append(model.name)
            raise ClientError({"Error": {"Code": "DisabledException", "Message": "disabled"}}, model.name)

    client.meta.events.register("before-parameter-build.kms.*", deny)
    return refused


def test_imported_material_runbook(
    aws_client: Callable[..., Any], store: SqlKeyStore, sqlite_engine: sa.Engine
) -> None:
    """Runbook 7: a new EXTERNAL key, rewrap, deploy, rewrap --remove-old, alias moved: the old key is never needed again."""
    kms = aws_client("kms", "us-east-1")
    old = kms.create_key(Origin="EXTERNAL", Description="material of 2026")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/pii", TargetKeyId=old)
    values = written_under(old, kms, sqlite_engine.url)
    new = kms.create_key(Origin="EXTERNAL", Description="material of 2027")["KeyMetadata"]
    assert new["Origin"] == "EXTERNAL"

    added = command("--master-key", old, "keys", "rewrap", "--to", new["Arn"])
    assert added.exit_code == 0, added.stderr
    assert payload(added)["rewrapped"] == 2
    deployed = fieldcrypt.Keyring(
        KEYRING,
        KmsMasterKey(new["Arn"], client=kms),
        store,
        also_decrypt_with=[KmsMasterKey(old, client=kms)],
    )
    assert [deployed.decrypt_str(v, PLACE) for v in values] == SSNS
    removed = command("--master-key", new["Arn"], "keys", "rewrap", "--to", new["Arn"], "--remove-old")
    assert removed.exit_code == 0, removed.stderr
    assert payload(removed)["removed_copies"] == 2
    kms.update_alias(AliasName="alias/pii", TargetKeyId=new["KeyId"])
    kms.disable_key(KeyId=old.rsplit("/", 1)[1])  # moto's DisableKey takes the bare id (an ARN: HTTP 500)

    assert kms.describe_key(KeyId="alias/pii")["KeyMetadata"]["Arn"] == new["Arn"]
    assert all(set(r.wraps) == {new["Arn"]} for r in store.list(KEYRING))
    client = aws_client("kms", "us-east-1")
    refused = refuse_key(client, old)
    after = fieldcrypt.Keyring(KEYRING, KmsMasterKey(new["Arn"], client=client), store)
    assert [after.decrypt_str(v, PLACE) for v in values] == SSNS
    assert refused == []


def test_single_region_key_moved_to_another_region_runbook(
    aws_client: Callable[..., Any], store: SqlKeyStore, sqlite_engine: sa.Engine, request_log: Any
) -> None:
    """Runbook 8: rewrap from a us-east-1 key to a us-west-2 key; the us-west-2 reader then calls only us-west-2."""
    east = aws_client("kms", "us-east-1")
    old = east.create_key()["KeyMetadata"]["Arn"]
    values = written_under(old, east, sqlite_engine.url)
    new = aws_client("kms", "us-west-2").create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(fieldcrypt.ConfigurationError, match="not a multi-region key"):
        KmsMasterKey(old, region="us-west-2")

    added = command("--master-key", old, "keys", "rewrap", "--to", new)
    assert added.exit_code == 0, added.stderr
    assert (payload(added)["unwrap_wrap_calls"], payload(added)["reencrypt_calls"]) == (3, 0)  # + anchor
    removed = command("--master-key", new, "keys", "rewrap", "--to", new, "--remove-old")
    assert removed.exit_code == 0, removed.stderr
    assert all(set(r.wraps) == {new} for r in store.list(KEYRING))

    west = request_log.attach(aws_client("kms", "us-west-2"))
    reader = fieldcrypt.Keyring(KEYRING, KmsMasterKey(new, region="us-west-2", client=west), store)
    assert [reader.decrypt_str(v, PLACE) for v in values] == SSNS
    assert request_log.operations() == ["Decrypt", "Decrypt"]  # one per data key
    assert all(region == "us-west-2" and arns == [new] for _, region, arns in request_log.calls)


def test_cross_account_runbook_grant_and_full_arns(aws_client: Callable[..., Any], request_log: Any) -> None:
    """Runbook 9: the grant as written is accepted; aliases are refused; every KMS request names the full key ARN."""
    kms = aws_client("kms", "us-east-1")
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    operations = ["Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "DescribeKey"]
    kms.create_grant(
        KeyId=arn,
        GranteePrincipal="arn:aws:iam::444455556666:role/app",
        Operations=operations,
        Constraints={"EncryptionContextSubset": {"fieldcrypt:keyring": "pii"}},
    )
    (grant,) = kms.list_grants(KeyId=arn)["Grants"]
    assert grant["GranteePrincipal"] == "arn:aws:iam::444455556666:role/app"
    assert sorted(grant["Operations"]) == sorted(operations)
    assert grant["Constraints"] == {"EncryptionContextSubset": {"fieldcrypt:keyring": "pii"}}

    with pytest.raises(fieldcrypt.ConfigurationError, match="aliases are not accepted"):
        KmsMasterKey(arn.replace(arn.rsplit(":", 1)[1], "alias/pii"))
    client = request_log.attach(aws_client("kms", "us-east-1"))
    keyring = fieldcrypt.Keyring(KEYRING, KmsMasterKey(arn, client=client), fieldcrypt.MemoryKeyStore())
    blob = keyring.encrypt("123-45-6789", PLACE)
    keyring.cache.clear()
    assert keyring.decrypt_str(blob, PLACE) == "123-45-6789"
    assert request_log.operations() == ["Encrypt", "Encrypt", "Decrypt"]  # the anchor, the data key
    assert all(arns == [arn] for _, _, arns in request_log.calls)
