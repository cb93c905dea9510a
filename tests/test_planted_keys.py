"""The planted-key attack, performed: an adversary who can write key-store rows and call KMS
``Encrypt`` (not ``Decrypt``) files a data key they chose, as docs/format.md describes, and tries to
make applications encrypt or index under it (issue 8, section 1)."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

import fieldcrypt
from fieldcrypt import KmsMasterKey
from fieldcrypt.errors import KeyStoreIntegrityError
from fieldcrypt.keys.trust import anchor_slot
from fieldcrypt.place import Place
from fieldcrypt.stores.dynamodb import DynamoDBKeyStore
from fieldcrypt.stores.sql import SqlKeyStore

PLACE = Place("users", "ssn")


class Adversary:
    """KMS Encrypt and GenerateDataKey allowed, Decrypt denied (as IAM would deny it)."""

    def __init__(self, kms: Any, arn: str) -> None:
        def deny(**_: Any) -> None:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "Decrypt")

        kms.meta.events.register("before-call.kms.Decrypt", deny)
        self.kms = kms
        self.arn = arn
        self.key = os.urandom(32)
        self.key_id = hmac.digest(self.key, b"fieldcrypt/v1/key-id", "sha256")[:20].hex()

    def wrap(self, keyring: str, key_id: str, purpose: str, secret: bytes) -> bytes:
        context = {
            "fieldcrypt:keyring": keyring,
            "fieldcrypt:data-key-id": key_id,
            "fieldcrypt:purpose": purpose,
        }
        blob = self.kms.encrypt(KeyId=self.arn, Plaintext=secret, EncryptionContext=context)["CiphertextBlob"]
        with pytest.raises(ClientError):  # the adversary really cannot decrypt
            self.kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
        return bytes(blob)

    def row(self, keyring: str, purpose: str, generation: int, **overrides: Any) -> dict[str, Any]:
        """An active row dated newest, with the next generation and a MAC it had to guess."""
        key_id = overrides.pop("key_id", self.key_id)
        secret = overrides.pop("secret", self.key)
        return {
            "key_id": key_id,
            "keyring": keyring,
            "purpose": purpose,
            "status": "active",
            "created_at": datetime.now(UTC) + timedelta(seconds=1),
            "wraps": {self.arn: self.wrap(keyring, key_id, purpose, secret)},
            "revision": 0,
            "generation": generation,
            "mac": os.urandom(32),
            **overrides,
        }


def plant_sql(store: SqlKeyStore, row: dict[str, Any]) -> None:
    values = dict(row)
    values["created_at"] = values["created_at"].replace(tzinfo=None)
    values["wraps"] = json.dumps({k: base64.b64encode(v).decode() for k, v in values["wraps"].items()})
    values["mac"] = values["mac"].hex()
    with store.engine.begin() as conn:
        conn.execute(sa.insert(store.table).values(**values))


def plant_ddb(store: DynamoDBKeyStore, row: dict[str, Any]) -> None:
    item = {
        "key_id": {"S": row["key_id"]},
        "keyring": {"S": row["keyring"]},
        "purpose": {"S": row["purpose"]},
        "status": {"S": row["status"]},
        "created_at": {"S": row["created_at"].isoformat(timespec="microseconds")},
        "wraps": {"M": {k: {"B": v} for k, v in row["wraps"].items()}},
        "revision": {"N": "0"},
        "generation": {"N": str(row["generation"])},
        "mac": {"B": row["mac"]},
    }
    store.client.put_item(TableName=store.table, Item=item)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb", "dynamodb"])
def backend(
    request: pytest.FixtureRequest, aws_client: Callable[..., Any]
) -> tuple[Any, Callable[..., None]]:
    """A key store on each backend, with the adversary's way of inserting a row into it."""
    if request.param == "dynamodb":
        store = DynamoDBKeyStore(f"keys_{os.urandom(4).hex()}", client=aws_client("dynamodb"))
        store.create_table()
        return store, plant_ddb
    engine = request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else request.param}_engine")
    sql_store = SqlKeyStore(engine)
    sql_store.create_table()
    return sql_store, plant_sql


def plant_record(keyring: fieldcrypt.Keyring) -> str:
    """File a key as a planter with KMS Encrypt would (through the store's API): active, dated
    newest, a high generation, a guessed MAC. Returns its id."""
    from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status, kms_context, utcnow

    key = os.urandom(32)
    key_id = hmac.digest(key, b"fieldcrypt/v1/key-id", "sha256")[:20].hex()
    wrapped = keyring.master_key.wrap(key, kms_context(keyring.name, key_id, Purpose.ENCRYPTION))
    keyring.key_store.put(
        DataKeyRecord(
            key_id, keyring.name, Purpose.ENCRYPTION, Status.ACTIVE, utcnow() + timedelta(seconds=1),
            {keyring.master_key.key_id: wrapped}, generation=99, mac=os.urandom(32),
        )
    )  # fmt: skip
    return key_id


def _stored_key_id(blob: bytes) -> str:
    return blob[1:21].hex()  # what the database holds: version byte, then the data key id


def test_planted_data_key_is_never_used_for_new_values(
    backend: tuple[Any, Callable[..., None]], kms_key: str, aws_client: Callable[..., Any], caplog: Any
) -> None:
    """A key planted with KMS Encrypt only, newest and next generation, never encrypts a value; it is reported."""
    store, plant = backend
    writer = fieldcrypt.Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    legit = _stored_key_id(writer.encrypt("before", PLACE))
    adversary = Adversary(aws_client("kms"), kms_key)
    plant(store, adversary.row("pii", "encryption", generation=2))
    caplog.set_level(logging.WARNING)

    writer.refresh()  # a warm process at its next refresh
    fresh = fieldcrypt.Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    for keyring in (writer, fresh):
        blob = keyring.encrypt("123-45-6789", PLACE)
        assert blob[:1] == b"\x01"
        assert b"123-45-6789" not in blob
        assert _stored_key_id(blob) == legit != adversary.key_id
        assert keyring.key_states()[adversary.key_id] == "unauthenticated"
    assert f"data key {adversary.key_id} is unauthenticated" in caplog.text
    # After a rotation the new key is still one the keyring made, not the planted one.
    assert writer.rotate().key_id != adversary.key_id
    assert _stored_key_id(writer.encrypt("x", PLACE)) not in (legit, adversary.key_id)


def test_planted_blind_index_key_is_never_used_for_tokens(
    backend: tuple[Any, Callable[..., None]], kms_key: str, aws_client: Callable[..., Any]
) -> None:
    """A planted blind-index key neither indexes new values nor turns a search into a token under it."""
    store, plant = backend
    keyring = fieldcrypt.Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    token = keyring.blind_index("123-45-6789", PLACE)
    adversary = Adversary(aws_client("kms"), kms_key)
    plant(store, adversary.row("pii", "blind_index", generation=2))
    keyring.refresh()
    planted_token = hmac.digest(
        adversary.key, b"fieldcrypt/v1/blind-index" + Place("users", "ssn").encoded + b"123-45-6789", "sha256"
    )[:16]
    assert keyring.blind_index("123-45-6789", PLACE) == token
    assert keyring.blind_index_candidates("123-45-6789", PLACE) == [token]
    assert planted_token not in keyring.blind_index_candidates("123-45-6789", PLACE)


def test_values_under_a_planted_key_still_decrypt_but_it_is_never_current(
    sqlite_engine: sa.Engine, kms_key: str, aws_client: Callable[..., Any]
) -> None:
    """Unauthenticated records (0.1 keys, producers' keys) stay readable: decrypt-only, never current."""
    store = SqlKeyStore(sqlite_engine)
    store.create_table()
    keyring = fieldcrypt.Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    keyring.warm_up()
    adversary = Adversary(aws_client("kms"), kms_key)
    plant_sql(store, adversary.row("pii", "encryption", generation=9))
    from fieldcrypt import _aead

    header = b"\x01" + bytes.fromhex(adversary.key_id)
    blob = header + _aead.Aead(adversary.key).seal(b"written elsewhere", header + PLACE.encoded)
    assert keyring.decrypt(blob, PLACE) == b"written elsewhere"
    assert keyring.chosen_key_id() != adversary.key_id


def test_a_stray_anchor_and_keys_it_signs_are_ignored(
    backend: tuple[Any, Callable[..., None]], kms_key: str, aws_client: Callable[..., Any], caplog: Any
) -> None:
    """A second anchor filed elsewhere (with keys MACed under it) is reported and changes nothing."""
    from fieldcrypt.keys import trust
    from fieldcrypt.keys.record import DataKeyRecord, Purpose, Status

    store, plant = backend
    keyring = fieldcrypt.Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    legit = keyring.current_key_id()
    adversary = Adversary(aws_client("kms"), kms_key)
    secret = os.urandom(32)
    stray_id = os.urandom(20).hex()
    plant(store, adversary.row("pii", "anchor", generation=1, key_id=stray_id, secret=secret))
    signed = trust.sign(
        DataKeyRecord(
            adversary.key_id, "pii", Purpose.ENCRYPTION, Status.ACTIVE, datetime.now(UTC), generation=5
        ),
        trust.mac_key(secret),
    )
    plant(
        store, adversary.row("pii", "encryption", generation=5, created_at=signed.created_at, mac=signed.mac)
    )
    caplog.set_level(logging.WARNING)
    keyring.refresh()
    assert keyring.current_key_id() == legit
    assert f"record {stray_id} claims to be an anchor" in caplog.text


def test_replaced_anchor_is_refused_by_a_warm_process_and_a_pinned_one(
    sqlite_engine: sa.Engine, kms_key: str, aws_client: Callable[..., Any]
) -> None:
    """The anchor row deleted and re-planted (with keys MACed under it): refused where known or pinned."""
    from fieldcrypt.keys import trust

    store = SqlKeyStore(sqlite_engine)
    store.create_table()
    master = KmsMasterKey(kms_key, client=aws_client("kms"))
    warm = fieldcrypt.Keyring("pii", master, store)
    warm.encrypt("x", PLACE)
    pin = warm.anchor_fingerprint()
    adversary = Adversary(aws_client("kms"), kms_key)
    secret = os.urandom(32)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(store.table).where(store.table.c.key_id == anchor_slot("pii")))
    plant_sql(store, adversary.row("pii", "anchor", generation=0, key_id=anchor_slot("pii"), secret=secret))
    warm.cache.clear()
    warm.refresh()
    with pytest.raises(KeyStoreIntegrityError, match="tampered"):
        warm.encrypt("y", PLACE)
    pinned = fieldcrypt.Keyring("pii", master, store, anchor_id=pin)
    with pytest.raises(KeyStoreIntegrityError, match="pinned"):
        pinned.encrypt("y", PLACE)
    assert trust.anchor_slot("pii") == anchor_slot("pii")
