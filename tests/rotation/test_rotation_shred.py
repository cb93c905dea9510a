"""Crypto-shredding that reaches backups: a key-store backup taken before the shred, restored
afterwards, no longer opens the shredded key once the old master key is retired; survivors read
under the new master key."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.awsrequest import AWSResponse
from click.testing import Result
from rotation_helpers import ResponseBody

import fieldcrypt
from cli_runner import cli_runner
from fieldcrypt.cli import cli
from fieldcrypt.keys.kms import KmsMasterKey
from fieldcrypt.rotation.shred import retirement_steps, shred
from fieldcrypt.stores.sql import SqlKeyStore

SSN = fieldcrypt.Place("users", "ssn")
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "rotation.md"


def invoke(*args: str) -> Result:
    return cli_runner().invoke(cli, list(args), catch_exceptions=False)


def refuse_keys_pending_deletion(client: Any, admin_client: Any) -> None:
    """Answer KMSInvalidStateException to a request naming a key pending deletion, as KMS does
    (moto keeps using such keys). The key's state is moto's own, read with ``admin_client``."""

    def send(request: Any, **_: Any) -> AWSResponse | None:
        body = json.loads(request.body or b"{}")
        for name in ("KeyId", "SourceKeyId", "DestinationKeyId"):
            key = body.get(name)
            if key and admin_client.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion":
                error = {"__type": "KMSInvalidStateException", "message": f"{key} is pending deletion."}
                headers = {"Content-Type": "application/x-amz-json-1.1"}
                return AWSResponse(request.url, 400, headers, ResponseBody(json.dumps(error).encode()))
        return None

    client.meta.events.register("before-send.kms.*", send)


def backup(engine: sa.Engine) -> list[Mapping[str, Any]]:
    """A copy of every key-store row, as a database backup holds them."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(SqlKeyStore(engine).table)).mappings().all())


def restore(rows: list[Mapping[str, Any]], database: Path) -> SqlKeyStore:
    """The backup restored into a database of its own (where a thief or an old replica reads it)."""
    store = SqlKeyStore(sa.create_engine(f"sqlite:///{database}"))
    store.create_table()
    with store.engine.begin() as conn:
        conn.execute(sa.insert(store.table), [dict(r) for r in rows])
    return store


def _written(keyring: fieldcrypt.Keyring) -> tuple[bytes, bytes, str]:
    """A value under a first data key (to shred), one under a second (a survivor), the first key's id."""
    doomed = keyring.encrypt("123-45-6789", SSN)
    keyring.rotate()
    keyring.rotate(fieldcrypt.Purpose.BLIND_INDEX)
    survivor = keyring.encrypt("987-65-4321", SSN)
    return doomed, survivor, keyring.key_id_of(doomed)


def test_pre_shred_backup_is_unreadable_once_the_old_kms_key_is_pending_deletion(
    sqlite_engine: sa.Engine, aws_client: Callable[..., Any], request_log: Any, tmp_path: Path
) -> None:
    """Backup, shred, schedule-key-deletion of the old key, restore: the shredded value is gone, survivors read."""
    admin_kms = aws_client("kms")
    kms = request_log.attach(aws_client("kms"))
    refuse_keys_pending_deletion(kms, admin_kms)
    old_arn, new_arn = (admin_kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    store = SqlKeyStore(sqlite_engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", KmsMasterKey(old_arn, client=kms), store)
    doomed, survivor, doomed_key = _written(keyring)
    pre_shred = backup(sqlite_engine)

    request_log.calls.clear()
    report = shred(keyring, doomed_key, KmsMasterKey(new_arn, client=kms))
    assert request_log.operations() == ["ReEncrypt"] * 3  # survivors and the anchor moved inside KMS
    assert (report.rewrapped, report.removed_copies, report.retire_master_keys) == (2, 2, [old_arn])
    assert all(set(r.wraps) == {new_arn} for r in store.list("pii") if r.key_id != doomed_key)
    assert retirement_steps(report, {})[1].startswith(
        f"aws kms schedule-key-deletion --key-id {old_arn} --pending-window-in-days 7"
    )

    # Until the old key is retired, the backup still opens the shredded key: what shred alone gives.
    thief = fieldcrypt.Keyring(
        "pii", KmsMasterKey(old_arn, client=kms), restore(pre_shred, tmp_path / "restored.db")
    )
    assert thief.decrypt(doomed, SSN) == b"123-45-6789"

    # moto's ScheduleKeyDeletion and CancelKeyDeletion take only the bare key id (an ARN gives HTTP 500).
    admin_kms.schedule_key_deletion(KeyId=old_arn.split("/")[-1], PendingWindowInDays=7)
    restored = restore(pre_shred, tmp_path / "restored-again.db")
    old_key_reader = fieldcrypt.Keyring("pii", KmsMasterKey(old_arn, client=kms), restored)
    with pytest.raises(fieldcrypt.KeyAccessError, match=r"\(KMSInvalidStateException\).*pending deletion"):
        old_key_reader.decrypt(doomed, SSN)
    new_key_reader = fieldcrypt.Keyring("pii", KmsMasterKey(new_arn, client=kms), restored)
    with pytest.raises(fieldcrypt.KeyAccessError, match=f"wrapped only under \\['{old_arn}'\\]"):
        new_key_reader.decrypt(doomed, SSN)

    application = fieldcrypt.Keyring("pii", KmsMasterKey(new_arn, client=kms), store)
    assert application.decrypt(survivor, SSN) == b"987-65-4321"
    assert application.blind_index("x", SSN)  # the blind-index key survived too
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        application.decrypt(doomed, SSN)
    raw = {r["key_id"]: r["wraps"] for r in backup(sqlite_engine)}
    assert json.loads(raw[doomed_key]) == {}

    # The waiting period is the last chance: cancelling the deletion makes the backup readable again.
    admin_kms.cancel_key_deletion(KeyId=old_arn.split("/")[-1])
    late_thief = fieldcrypt.Keyring("pii", KmsMasterKey(old_arn, client=kms), restored)  # nothing cached
    assert late_thief.decrypt(doomed, SSN) == b"123-45-6789"


def test_pre_shred_backup_is_unreadable_once_the_old_key_file_is_destroyed(
    sqlite_engine: sa.Engine, tmp_path: Path
) -> None:
    """Local master keys: after shred and deleting the old key file, the backup cannot open the shredded key."""
    old_file, new_file = tmp_path / "old.key", tmp_path / "new.key"
    old, new = fieldcrypt.LocalMasterKey.write_new(old_file), fieldcrypt.LocalMasterKey.write_new(new_file)
    store = SqlKeyStore(sqlite_engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", old, store)
    doomed, survivor, doomed_key = _written(keyring)
    pre_shred = backup(sqlite_engine)
    report = shred(keyring, doomed_key, new)
    steps = retirement_steps(report, {old.key_id: f"file:{old_file}"})
    assert (
        steps[1]
        == f"delete local master key {old.key_id} ({old_file}) and every copy of it, backups of the key file included"
    )
    old_file.unlink()
    with pytest.raises(fieldcrypt.ConfigurationError, match="cannot read local master key file"):
        fieldcrypt.LocalMasterKey.from_file(old_file)
    restored = fieldcrypt.Keyring("pii", new, restore(pre_shred, tmp_path / "restored.db"))
    with pytest.raises(fieldcrypt.KeyAccessError, match="is wrapped only under"):
        restored.decrypt(doomed, SSN)
    application = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.from_file(new_file), store)
    assert application.decrypt(survivor, SSN) == b"987-65-4321"
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        application.decrypt(doomed, SSN)


def test_shred_refuses_a_new_master_key_that_wrapped_the_key(local_keyring: fieldcrypt.Keyring) -> None:
    """Shredding "to" a master key holding a copy of the key would leave that copy in every backup."""
    doomed = local_keyring.key_id_of(local_keyring.encrypt("x", SSN))
    with pytest.raises(fieldcrypt.ConfigurationError, match="backups keep that copy"):
        shred(local_keyring, doomed, local_keyring.master_key)
    assert local_keyring.decrypt(local_keyring.encrypt("x", SSN), SSN) == b"x"


class _RefusingOnce:
    """A new master key whose first wrap is refused (KMS denied), then works."""

    def __init__(self, inner: fieldcrypt.MasterKey) -> None:
        self.inner, self.refused = inner, False
        self.key_id = inner.key_id

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        if not self.refused:
            self.refused = True
            raise fieldcrypt.KeyAccessError("denied", master_key_id=self.key_id)
        return self.inner.wrap(data_key, context)

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        return self.inner.unwrap(wrapped, context)

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return self.inner.can_unwrap(recorded_key_id)


def test_a_refused_new_master_key_destroys_nothing_and_a_rerun_finishes(
    local_keyring: fieldcrypt.Keyring,
) -> None:
    """If the new master key is refused, the data key is not destroyed yet; running again completes the shred."""
    doomed, survivor, doomed_key = _written(local_keyring)
    new = _RefusingOnce(fieldcrypt.LocalMasterKey.generate())
    with pytest.raises(fieldcrypt.KeyAccessError):
        shred(local_keyring, doomed_key, new)
    assert local_keyring.decrypt(doomed, SSN) == b"123-45-6789"
    report = shred(local_keyring, doomed_key, new)
    assert (report.was_destroyed_before, report.retire_master_keys) == (
        False,
        [local_keyring.master_key.key_id],
    )
    again = shred(local_keyring, doomed_key, new)  # idempotent: nothing left to do
    assert (again.was_destroyed_before, again.rewrapped, again.removed_copies) == (True, 0, 0)
    reader = fieldcrypt.Keyring("pii", new.inner, local_keyring.key_store)
    assert reader.decrypt(survivor, SSN) == b"987-65-4321"
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        reader.decrypt(doomed, SSN)


def test_shred_runbook_runs_against_kms(
    tmp_path: Path, moto_endpoint: str, aws_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/rotation.md's shredding runbook, run as written (CLI, then schedule-key-deletion) against moto."""
    admin_kms = aws_client("kms")
    kms = aws_client("kms")
    refuse_keys_pending_deletion(kms, admin_kms)
    old_arn, new_arn = (admin_kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    store = SqlKeyStore(engine)
    store.create_table()
    doomed, survivor, doomed_key = _written(
        fieldcrypt.Keyring("pii", KmsMasterKey(old_arn, client=kms), store)
    )
    pre_shred = backup(engine)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", old_arn)
    monkeypatch.setenv("FIELDCRYPT_KMS_ENDPOINT_URL", moto_endpoint)
    (block,) = [b for b in GUIDE.read_text().split("```") if "$ fieldcrypt keys shred <key id>" in b]
    lines = [line[2:].split("  #")[0] for line in block.splitlines() if line.startswith("$ ")]
    filled = [
        line.replace("<key id>", doomed_key[:8])
        .replace("<new key arn>", new_arn)
        .replace("<old key arn>", old_arn)
        for line in lines
    ]
    assert [line.split()[:3] for line in filled] == [
        ["fieldcrypt", "keys", "shred"],
        ["aws", "kms", "schedule-key-deletion"],
    ]
    done = invoke("--json", *shlex.split(filled[0])[1:])
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["next_steps"][1].startswith(
        filled[1].strip()
    )  # the CLI prints the runbook's step
    aws = shlex.split(filled[1])
    options = dict(zip(aws[3::2], aws[4::2], strict=True))
    admin_kms.schedule_key_deletion(
        KeyId=options["--key-id"].split("/")[-1],  # moto takes only the bare key id here
        PendingWindowInDays=int(options["--pending-window-in-days"]),
    )
    restored = restore(pre_shred, tmp_path / "restored.db")
    with pytest.raises(fieldcrypt.KeyAccessError, match="pending deletion"):
        fieldcrypt.Keyring("pii", KmsMasterKey(old_arn, client=kms), restored).decrypt(doomed, SSN)
    application = fieldcrypt.Keyring("pii", KmsMasterKey(new_arn, client=kms), store)
    assert application.decrypt(survivor, SSN) == b"987-65-4321"
    with pytest.raises(fieldcrypt.KeyDestroyedError):
        application.decrypt(doomed, SSN)


def test_shred_without_yes_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`keys shred` without --yes exits 2 and the data key still decrypts."""
    old_file, new_file = tmp_path / "old.key", tmp_path / "new.key"
    old = fieldcrypt.LocalMasterKey.write_new(old_file)
    fieldcrypt.LocalMasterKey.write_new(new_file)
    store = SqlKeyStore(sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}"))
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", old, store)
    value = keyring.encrypt("x", SSN)
    monkeypatch.setenv("FIELDCRYPT_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("FIELDCRYPT_MASTER_KEY_URI", f"file:{old_file}")
    refused = invoke("keys", "shred", keyring.key_id_of(value), "--to", f"file:{new_file}")
    assert refused.exit_code == 2
    assert "pass --yes" in refused.stderr
    assert fieldcrypt.Keyring("pii", old, store).decrypt(value, SSN) == b"x"
