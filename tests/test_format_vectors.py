"""Format v1 known-answer vectors: every encoding rule of docs/format.md, recomputed from its words.

The helpers below re-implement the specification with ``struct``, ``hmac`` and ``cryptography``'s
AESGCM only (never fieldcrypt's own encoders), each test checks that fieldcrypt writes or accepts
exactly those bytes, and each pinned vector must equal the hex printed in docs/format.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Integer, Numeric, PrimaryKeyConstraint, String, Uuid
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt import codecs, storage
from fieldcrypt.dynamodb.wire import to_json
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.master import canonical_context
from fieldcrypt.keys.record import kms_context
from fieldcrypt.sqlalchemy import Encrypted, column_spec
from fieldcrypt.sqlalchemy.row_binding import row_key
from fieldcrypt.storage.sql import column_type

DOC = Path(__file__).resolve().parents[1] / "docs" / "format.md"

DATA_KEY = bytes(range(32))
INDEX_KEY = bytes(range(32, 64))
MASTER = bytes(range(1, 33))
WRAP_NONCE = bytes(range(200, 212))
U = uuid.UUID("6f1c2a3e-0d4b-4c5a-9e8f-7a6b5c4d3e2f")
KAT_BLOB = bytes.fromhex(
    "01b248e8ee3ec2e316d6abb124f8d3f6f67cb2777d6465666768696a6b6c6d6e6f"
    "7929ed4b4ddc7ba8095a6668f69ac5420e026e3095c2635c013c90"
)

# Pinned vectors (each also printed in docs/format.md under "Test vectors").
DECIMAL_KEY_PLACE = "00066f726465727300046e6f7465010001640000000431452b32"
DECIMAL_38_KEY_PLACE = (
    "00066f726465727300046e6f746501000164000000263132333435363738393031323334353637383930313233343536"
    "373839303132333435363738"
)
COMPOSITE_KEY_PLACE = "00086163636f756e74730006736563726574010002690000000137730000000565752dc39f"
UUID_KEY_PLACE = "000764657669636573000673656372657401000175000000106f1c2a3e0d4b4c5a9e8f7a6b5c4d3e2f"
SCHEMA_PLACE = "000e74656e616e745f612e7573657273000373736e00"
NAMESPACE_PLACE = "000a64622d61007573657273000373736e00"
TEXT_STORAGE = "AbJI6O4+wuMW1quxJPjT9vZ8snd9ZGVmZ2hpamtsbW5veSntS03ce6gJWmZo9prFQg4CbjCVwmNcATyQ"
LOCAL_KEY_FILE = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
LOCAL_KEY_ID = "local:a9011c703a2092da"
LOCAL_WRAP_AAD = (
    "7b226669656c6463727970743a646174612d6b65792d6964223a2262323438653865653365633265333136"
    "643661626231323466386433663666363763623237373764222c226669656c6463727970743a6b65797269"
    "6e67223a22636c5c7530306539222c226669656c6463727970743a707572706f7365223a22656e63727970"
    "74696f6e227d"
)
LOCAL_WRAP = (
    "c8c9cacbcccdcecfd0d1d2d398dc94dca2828b9fdc2a751c67a4722dff076d51140c5365c18683e76a30b059"
    "e39a01342ea4795caabaf2a2cd1af07c"
)
RSA_WRAP_PAYLOAD = (
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "01ad5b268ff766a56080ef7ea6f9829ad033bf550711c242acaec60fad3f779b"
)
BLIND_INDEX_INPUT = (
    "6669656c6463727970742f76312f626c696e642d696e64657800057573657273000373736e003132332d34352d36373839"
)
BLIND_INDEX_TOKEN = "105932d797dece5f9ee542d675a87524"


# --- the specification, re-implemented from docs/format.md -------------------------------------


def spec_name(name: str) -> bytes:
    """u16be length in UTF-8 bytes, then the UTF-8 bytes."""
    raw = name.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def spec_part(tag: str, body: bytes) -> bytes:
    return tag.encode("ascii") + struct.pack(">I", len(body)) + body


def spec_place(table: str, column: str, parts: list[bytes] | None = None) -> bytes:
    """The place: names, then 0x00 (no row) or 0x01, u16be count and the parts."""
    head = spec_name(table) + spec_name(column)
    if parts is None:
        return head + b"\x00"
    return head + b"\x01" + struct.pack(">H", len(parts)) + b"".join(parts)


def spec_key_id(data_key: bytes) -> bytes:
    return hmac.new(data_key, b"fieldcrypt/v1/key-id", hashlib.sha256).digest()[:20]


def spec_open(keyring: Keyring, blob: bytes, place: bytes) -> bytes:
    """Decrypt a stored value with the spec alone, given the keyring's unwrapped data key."""
    record = keyring.key_store.get(blob[1:21].hex())
    assert record is not None
    context = {
        "fieldcrypt:keyring": keyring.name,
        "fieldcrypt:data-key-id": record.key_id,
        "fieldcrypt:purpose": "encryption",
    }
    data_key = keyring.master_key.unwrap(record.wraps[keyring.master_key.key_id], context)
    assert blob[0] == 1
    assert blob[1:21] == spec_key_id(data_key)
    return AESGCM(data_key).decrypt(blob[21:33], blob[33:], blob[:21] + place)


def doc_vector(name: str) -> str:
    """The code block after ``<!-- vector: name -->`` in docs/format.md."""
    found = re.search(rf"<!-- vector: {re.escape(name)} -->\s*```\w*\n(.*?)```", DOC.read_text("utf-8"), re.S)
    assert found, f"docs/format.md has no vector {name!r}"
    return found.group(1)


def doc_hex(name: str) -> str:
    return "".join(doc_vector(name).split())


# --- row keys ----------------------------------------------------------------------------------


class VectorBase(DeclarativeBase):
    pass


class Order(VectorBase):
    __tablename__ = "orders"
    id: Mapped[Decimal] = mapped_column(Numeric(10, 2), primary_key=True, autoincrement=False)
    note: Mapped[str | None] = mapped_column(Encrypted(String(20), keyring="pii", bind_row=True))


class Account(VectorBase):
    __tablename__ = "accounts"
    # Declared region first, but the key constraint puts tenant first: the place follows the constraint.
    region: Mapped[str] = mapped_column(String(8))
    tenant: Mapped[int] = mapped_column(Integer, autoincrement=False)
    secret: Mapped[str | None] = mapped_column(Encrypted(String(20), keyring="pii", bind_row=True))
    __table_args__ = (PrimaryKeyConstraint("tenant", "region"),)


class Device(VectorBase):
    __tablename__ = "devices"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    secret: Mapped[str | None] = mapped_column(Encrypted(String(20), keyring="pii", bind_row=True))


@pytest.fixture
def registered(local_keyring: Keyring) -> Keyring:
    fieldcrypt.register(local_keyring)
    return local_keyring


@pytest.fixture
def tables(registered: Keyring) -> Iterator[Callable[[sa.Engine], sa.Engine]]:
    """Create the vector tables on an engine (dropped again at the end)."""
    made: list[sa.Engine] = []

    def create(engine: sa.Engine) -> sa.Engine:
        VectorBase.metadata.create_all(engine)
        made.append(engine)
        return engine

    yield create
    for engine in made:
        VectorBase.metadata.drop_all(engine)


def raw_value(engine: sa.Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).one()


def test_decimal_key_place_vector(tables: Callable[[sa.Engine], sa.Engine], sqlite_engine: sa.Engine) -> None:
    """A Numeric key is tag d with str(Decimal.normalize()): 100.00 binds as '1E+2', in the doc and the database."""
    expected = spec_place("orders", "note", [spec_part("d", b"1E+2")])
    assert expected.hex() == DECIMAL_KEY_PLACE == doc_hex("decimal-key-place")
    for key in (Decimal("100.00"), Decimal("100"), Decimal("1E+2")):
        assert fieldcrypt.Place("orders", "note", key).encoded == expected
    assert (
        fieldcrypt.Place("orders", "note", row_key(Order.__table__, {"id": 100}, "note")).encoded == expected
    )

    engine = tables(sqlite_engine)
    with Session(engine) as session:
        session.add(Order(id=100, note="paid"))
        session.commit()
    stored = raw_value(engine, "select note from orders")[0]
    assert b"paid" not in stored
    assert spec_open(registered_keyring(), stored, expected) == b"paid"
    with Session(engine) as session:
        assert session.get(Order, Decimal("100.00")).note == "paid"  # type: ignore[union-attr]


class WideOrder(VectorBase):
    __tablename__ = "wide_orders"
    id: Mapped[Decimal] = mapped_column(Numeric(38, 0), primary_key=True, autoincrement=False)
    note: Mapped[str | None] = mapped_column(Encrypted(String(20), keyring="pii", bind_row=True))


WIDE = Decimal("12345678901234567890123456789012345678")


def test_decimal_key_is_exact_beyond_28_digits_in_any_context(
    tables: Callable[[sa.Engine], sa.Engine], pg_engine: sa.Engine
) -> None:
    """A 38-digit key keeps every digit, in any decimal context: keys differing at digit 38 never share a place."""
    expected = spec_place("orders", "note", [spec_part("d", str(WIDE).encode())])
    assert expected.hex() == DECIMAL_38_KEY_PLACE == doc_hex("decimal-38-key-place")
    assert fieldcrypt.Place("orders", "note", WIDE).encoded == expected
    assert fieldcrypt.Place("orders", "note", WIDE + 1).encoded != expected
    with localcontext() as ctx:  # another thread's context: fewer digits, lower-case exponent
        ctx.prec, ctx.capitals = 6, 0
        assert fieldcrypt.Place("orders", "note", WIDE).encoded == expected
        assert fieldcrypt.Place("orders", "note", Decimal("100.00")).encoded.endswith(b"1E+2")

    engine = tables(pg_engine)
    with Session(engine) as session:
        session.add_all([WideOrder(id=WIDE, note="mine"), WideOrder(id=WIDE + 1, note="theirs")])
        session.commit()
    with engine.begin() as conn:  # a writer swaps the two values: each must now fail to decrypt
        rows = {k: v for k, v in conn.execute(sa.text("select id, note from wide_orders"))}
        for key, other in ((WIDE, WIDE + 1), (WIDE + 1, WIDE)):
            conn.execute(
                sa.text("update wide_orders set note = :n where id = :i"), {"n": rows[other], "i": key}
            )
    wide_place = spec_place("wide_orders", "note", [spec_part("d", str(WIDE + 1).encode())])
    assert spec_open(registered_keyring(), rows[WIDE + 1], wide_place) == b"theirs"
    with Session(engine) as session, pytest.raises(fieldcrypt.DecryptionError):
        session.get(WideOrder, WIDE)


def test_float_primary_key_is_refused_at_declaration() -> None:
    """A row-bound column over a Float key fails when the table is declared, naming the key column."""
    for key_type in (sa.Float(), sa.Numeric(10, 2, asdecimal=False)):
        with pytest.raises(fieldcrypt.ConfigurationError, match=r"primary-key column id is .*exact row key"):
            sa.Table(
                "floaty",
                sa.MetaData(),
                sa.Column("id", key_type, primary_key=True),
                sa.Column("v", Encrypted(String(5), keyring="pii", bind_row=True)),
            )
    with pytest.raises(fieldcrypt.ConfigurationError, match="primary-key column id"):
        sa.Table(  # the encrypted column first, the key given by a constraint afterwards
            "floaty",
            sa.MetaData(),
            sa.Column("v", Encrypted(String(5), keyring="pii", bind_row=True)),
            sa.Column("id", sa.Float()),
            PrimaryKeyConstraint("id"),
        )


def registered_keyring() -> Keyring:
    return fieldcrypt.registry.get_keyring("pii")


def test_composite_key_place_follows_the_constraint_order(
    tables: Callable[[sa.Engine], sa.Engine], sqlite_engine: sa.Engine
) -> None:
    """Parts follow PrimaryKeyConstraint order (tenant, region), not column order; lengths are UTF-8 bytes."""
    expected = spec_place("accounts", "secret", [spec_part("i", b"7"), spec_part("s", "eu-ß".encode())])
    assert expected.hex() == COMPOSITE_KEY_PLACE == doc_hex("composite-key-place")
    assert [c.name for c in Account.__table__.columns][:2] == ["region", "tenant"]

    engine = tables(sqlite_engine)
    with engine.begin() as conn:  # a Core insert: the key as plain parameters, tenant given as text
        conn.execute(sa.insert(Account.__table__), [{"region": "eu-ß", "tenant": "7", "secret": "k"}])
    stored = raw_value(engine, "select secret from accounts")[0]
    assert spec_open(registered_keyring(), stored, expected) == b"k"
    with Session(engine) as session:
        assert session.get(Account, (7, "eu-ß")).secret == "k"  # type: ignore[union-attr]


def test_uuid_key_place_is_16_bytes_from_every_form(
    tables: Callable[[sa.Engine], sa.Engine], mariadb_engine: sa.Engine
) -> None:
    """A Uuid key is tag u with 16 bytes, given as uuid.UUID or as the string MariaDB stores and returns."""
    expected = spec_place("devices", "secret", [spec_part("u", U.bytes)])
    assert expected.hex() == UUID_KEY_PLACE == doc_hex("uuid-key-place")
    for given in (U, str(U), str(U).upper(), U.hex):
        assert fieldcrypt.Place(
            "devices", "secret", row_key(Device.__table__, {"id": given}, "secret")
        ).encoded == (expected)

    engine = tables(mariadb_engine)
    with Session(engine) as session:
        session.add(Device(id=U, secret="s"))
        session.commit()
    raw_id, stored = raw_value(engine, "select id, secret from devices")
    assert raw_id == str(U)  # MariaDB's UUID column reads as a string: the tag follows the type
    assert spec_open(registered_keyring(), stored, expected) == b"s"
    row = row_key(Device.__table__, {"id": raw_id}, "secret")
    assert fieldcrypt.Place("devices", "secret", row).encoded == expected
    with Session(engine) as session:
        assert session.get(Device, U).secret == "s"  # type: ignore[union-attr]


def test_text_uuid_key_is_the_lowercase_hyphenated_string() -> None:
    """A Uuid(as_uuid=False) key is tag s with the canonical 36-character form, whatever form was given."""
    table = sa.Table(
        "t", sa.MetaData(), sa.Column("id", Uuid(as_uuid=False), primary_key=True), sa.Column("v", String)
    )
    expected = spec_place("t", "v", [spec_part("s", str(U).encode())])
    for given in (U, str(U).upper(), U.hex):
        assert fieldcrypt.Place("t", "v", row_key(table, {"id": given}, "v")).encoded == expected


def test_dynamodb_number_key_is_a_normalised_decimal() -> None:
    """A DynamoDB N key part is tag d even for integers: 100 binds as '1E+2'."""
    from fieldcrypt.dynamodb.wire import row_key as item_row_key

    row = item_row_key({"pk": {"N": "100"}, "sk": {"S": "x"}}, ["pk", "sk"])
    expected = spec_place("t", "a", [spec_part("d", b"1E+2"), spec_part("s", b"x")])
    assert fieldcrypt.Place("t", "a", row).encoded == expected


def test_namespace_place_prefixes_the_table_field() -> None:
    """A keyring's namespace goes before the table name, NUL-separated; values open only under it."""
    from fieldcrypt.testing import local_keyring

    expected = spec_place("db-a\x00users", "ssn")
    assert expected.hex() == NAMESPACE_PLACE == doc_hex("namespace-place")
    keyring = local_keyring("pii", namespace="db-a", register_it=False)
    blob = keyring.encrypt(b"secret", fieldcrypt.Place("users", "ssn"))
    assert spec_open(keyring, blob, expected) == b"secret"
    with pytest.raises(InvalidTag):  # 0.1's place, without the namespace
        spec_open(keyring, blob, spec_place("users", "ssn"))


def test_schema_qualified_table_place() -> None:
    """A table in a non-default schema is placed under its full name, schema.table."""
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", Integer, primary_key=True),
        sa.Column("ssn", Encrypted(String(11), keyring="pii")),
        schema="tenant_a",
    )
    expected = spec_place("tenant_a.users", "ssn")
    assert expected.hex() == SCHEMA_PLACE == doc_hex("schema-place")
    assert column_spec("tenant_a.users", "ssn", table).place(None).encoded == expected


# --- text storage ------------------------------------------------------------------------------


def test_text_storage_vector(registered: Keyring) -> None:
    """Text storage is standard base64 of the binary value, and only the canonical form is read."""
    text = base64.b64encode(KAT_BLOB).decode("ascii")
    assert text == TEXT_STORAGE == doc_hex("text-storage")
    assert storage.to_stored(KAT_BLOB, "text") == text
    assert storage.from_stored(text) == KAT_BLOB
    assert len(text) == 80


# --- local master key, wraps, the DynamoDB key record -----------------------------------------


def spec_local_aad(keyring: str, key_id: str, purpose: str) -> bytes:
    """The canonical JSON of docs/format.md, written out by hand (sorted, compact, \\uXXXX escapes)."""

    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

    def string(text: str) -> str:
        out = []
        for ch in text:
            if ch in escapes:
                out.append(escapes[ch])
            elif 0x20 <= ord(ch) < 0x7F:
                out.append(ch)
            else:  # \uXXXX per UTF-16 code unit: a surrogate pair above U+FFFF
                units = ch.encode("utf-16-be")
                out.extend(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))
        return '"' + "".join(out) + '"'

    members = {"fieldcrypt:data-key-id": key_id, "fieldcrypt:keyring": keyring, "fieldcrypt:purpose": purpose}
    return ("{" + ",".join(f"{string(k)}:{string(members[k])}" for k in sorted(members)) + "}").encode(
        "ascii"
    )


def test_local_key_file_and_fingerprint(tmp_path: Path) -> None:
    """A key file is base64 of the 32 bytes and a newline; the id is local: + hex(HMAC(key, label)[:8])."""
    assert base64.b64encode(MASTER).decode() == LOCAL_KEY_FILE == doc_hex("local-key-file")
    fingerprint = hmac.new(MASTER, b"fieldcrypt/local-master-key-id", hashlib.sha256).digest()[:8].hex()
    assert f"local:{fingerprint}" == LOCAL_KEY_ID == doc_vector("local-key-id").strip()
    path = tmp_path / "master.key"
    path.write_text(LOCAL_KEY_FILE + "\n", encoding="ascii")
    path.chmod(0o600)
    assert fieldcrypt.LocalMasterKey.from_file(path).key_id == LOCAL_KEY_ID

    written = tmp_path / "new.key"
    key = fieldcrypt.LocalMasterKey.write_new(written)
    text = written.read_text(encoding="ascii")
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=\n", text)
    raw = base64.b64decode(text)
    expected_id = (
        "local:" + hmac.new(raw, b"fieldcrypt/local-master-key-id", hashlib.sha256).digest()[:8].hex()
    )
    assert key.key_id == expected_id
    assert written.stat().st_mode & 0o777 == 0o600


def test_local_wrap_aad_escapes_non_ascii() -> None:
    """The local wrap's associated data is sorted compact JSON with \\uXXXX escapes, and the wrap opens under it."""
    key_id = spec_key_id(DATA_KEY).hex()
    aad = spec_local_aad("clé", key_id, "encryption")
    assert aad.hex() == LOCAL_WRAP_AAD == doc_hex("local-wrap-aad")
    assert b"cl\\u00e9" in aad
    context = kms_context("clé", key_id, fieldcrypt.Purpose.ENCRYPTION)
    assert canonical_context(context) == aad
    # Astral characters, quotes and backslashes too: the hand-written rules match the code's bytes.
    odd = {
        "fieldcrypt:keyring": 'a"\\\n\x01😀',
        "fieldcrypt:data-key-id": key_id,
        "fieldcrypt:purpose": "blind_index",
    }
    assert canonical_context(odd) == spec_local_aad('a"\\\n\x01😀', key_id, "blind_index")

    wrap = WRAP_NONCE + AESGCM(MASTER).encrypt(WRAP_NONCE, DATA_KEY, aad)
    assert wrap.hex() == LOCAL_WRAP == doc_hex("local-wrap")
    assert len(wrap) == 60
    assert fieldcrypt.LocalMasterKey(MASTER).unwrap(wrap, context) == DATA_KEY


def test_rsa_wrap_payload_binds_the_context() -> None:
    """An RSA wrap is OAEP-SHA-256 of data key || SHA-256(aad); a reader's Decrypt call and check match it."""
    from botocore.stub import Stubber
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from fieldcrypt.keys.kms import kms_client
    from fieldcrypt.keys.kms_rsa import KmsRsaMasterKey, RsaProducerKey

    key_id = spec_key_id(DATA_KEY).hex()
    payload = DATA_KEY + hashlib.sha256(spec_local_aad("clé", key_id, "encryption")).digest()
    assert payload.hex() == RSA_WRAP_PAYLOAD == doc_hex("rsa-wrap-payload")

    context = kms_context("clé", key_id, fieldcrypt.Purpose.ENCRYPTION)
    private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    wrap = RsaProducerKey(arn, public).wrap(DATA_KEY, context)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert len(wrap) == 384
    assert private.decrypt(wrap, oaep) == payload

    # The reader sends exactly this Decrypt (KeyId, the OAEP block, the algorithm; no context).
    client = kms_client("us-east-1", endpoint_url="http://127.0.0.1:9")
    reader = KmsRsaMasterKey(arn, client=client)
    with Stubber(client) as stub:
        expected = {"KeyId": arn, "CiphertextBlob": wrap, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
        stub.add_response("decrypt", {"Plaintext": payload, "KeyId": arn}, expected)
        assert reader.unwrap(wrap, context) == DATA_KEY
        other = kms_context("clé", key_id, fieldcrypt.Purpose.BLIND_INDEX)
        stub.add_response("decrypt", {"Plaintext": payload, "KeyId": arn}, expected)
        with pytest.raises(fieldcrypt.keys.master.UnwrapFailed):
            reader.unwrap(wrap, other)  # the payload names another context: refused


def test_dynamodb_key_record_stores_wraps_as_a_map_of_binary(aws_client: Callable[..., Any]) -> None:
    """A DynamoDB key record holds wraps as M of B (raw wrapped bytes), as the documented item shows."""
    client = aws_client("dynamodb", "us-east-1")
    store = fieldcrypt.DynamoDBKeyStore("vector_keys", client=client)
    store.create_table()
    key_id = spec_key_id(DATA_KEY).hex()
    wrap = bytes.fromhex(LOCAL_WRAP)
    store.put(
        fieldcrypt.DataKeyRecord(
            key_id=key_id,
            keyring="clé",
            purpose=fieldcrypt.Purpose.ENCRYPTION,
            status=fieldcrypt.Status.ACTIVE,
            created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            wraps={LOCAL_KEY_ID: wrap},
        )
    )
    item = client.get_item(TableName="vector_keys", Key={"key_id": {"S": key_id}}, ConsistentRead=True)[
        "Item"
    ]
    assert item["wraps"] == {"M": {LOCAL_KEY_ID: {"B": wrap}}}
    documented = json.loads(doc_vector("dynamodb-key-record"))
    assert {name: to_json(item[name]) for name in documented} == documented

    keyring = Keyring("clé", fieldcrypt.LocalMasterKey(MASTER), store)
    header = b"\x01" + spec_key_id(DATA_KEY)
    nonce = bytes(range(100, 112))
    place = spec_place("users", "ssn")
    blob = header + nonce + AESGCM(DATA_KEY).encrypt(nonce, b"123-45-6789", header + place)
    assert keyring.decrypt_str(blob, fieldcrypt.Place("users", "ssn")) == "123-45-6789"


def test_multi_region_wrap_is_filed_under_the_writers_regional_arn(
    mrk: dict[str, str], aws_client: Callable[..., Any], sqlite_engine: sa.Engine
) -> None:
    """A writer in us-west-2 configured with the us-east-1 ARN files its wrap under the us-west-2 ARN; us-east-1 reads it."""
    store = fieldcrypt.SqlKeyStore(sqlite_engine)
    store.create_table()
    west = fieldcrypt.KmsMasterKey(
        mrk["us-east-1"], region="us-west-2", client=aws_client("kms", "us-west-2")
    )
    blob = Keyring("pii", west, store).encrypt("x", fieldcrypt.Place("users", "ssn"))
    record = store.get(blob[1:21].hex())
    assert record is not None
    assert list(record.wraps) == [mrk["us-west-2"]]
    east = fieldcrypt.KmsMasterKey(mrk["us-east-1"], client=aws_client("kms", "us-east-1"))
    assert (
        Keyring("pii", east, fieldcrypt.SqlKeyStore(sqlite_engine)).decrypt_str(
            blob, fieldcrypt.Place("users", "ssn")
        )
        == "x"
    )


# --- blind index -------------------------------------------------------------------------------


class Person(VectorBase):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ssn: Mapped[str | None] = mapped_column(
        Encrypted(String(11), keyring="pii", searchable=True, bind_row=True)
    )


def test_blind_index_input_ends_its_place_with_the_no_row_byte(
    tables: Callable[[sa.Engine], sa.Engine], sqlite_engine: sa.Engine
) -> None:
    """The token is HMAC(key, label || place without row (0x00) || plaintext)[:16], even for a row-bound column."""
    message = b"fieldcrypt/v1/blind-index" + spec_place("users", "ssn") + b"123-45-6789"
    assert message.hex() == BLIND_INDEX_INPUT == doc_hex("blind-index-input")
    assert spec_place("users", "ssn").endswith(b"\x00")
    token = hmac.new(INDEX_KEY, message, hashlib.sha256).digest()[:16]
    assert token.hex() == BLIND_INDEX_TOKEN == doc_hex("blind-index-token")

    engine = tables(sqlite_engine)
    with Session(engine) as session:
        session.add(Person(id=1, ssn="123-45-6789"))
        session.commit()
    stored_token = raw_value(engine, "select ssn_bidx from users")[0]
    keyring = registered_keyring()
    (record,) = keyring.records(fieldcrypt.Purpose.BLIND_INDEX)
    index_key = keyring.master_key.unwrap(
        record.wraps[keyring.master_key.key_id],
        kms_context("pii", record.key_id, fieldcrypt.Purpose.BLIND_INDEX),
    )
    assert stored_token == hmac.new(index_key, message, hashlib.sha256).digest()[:16]


# --- codecs and sizes the spec states ----------------------------------------------------------


def test_json_bytes_keep_key_order() -> None:
    """JSON plaintext is compact UTF-8 in the dict's key order, not sorted: reordered keys give other bytes."""
    assert codecs.JSON.to_bytes({"b": 1, "a": "é"}) == '{"b":1,"a":"é"}'.encode()
    assert codecs.JSON.to_bytes({"a": "é", "b": 1}) != codecs.JSON.to_bytes({"b": 1, "a": "é"})


def test_uuid_columns_are_varbinary_85_on_mariadb() -> None:
    """An encrypted Uuid column (either form) is VARBINARY(85) on MariaDB: 36 plaintext bytes plus 49."""
    dialect = mysql.dialect()
    for type_ in (Uuid(), Uuid(as_uuid=False)):
        made = column_type(type_, "binary", dialect)
        assert isinstance(made, mysql.VARBINARY)
        assert made.length == 85


ANCHOR_SECRET = bytes(range(64, 96))
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def spec_mac_input(keyring: str, key_id: str, purpose: str, generation: int, created: str) -> bytes:
    return (
        b"fieldcrypt/v1/key-record"
        + spec_name(keyring)
        + spec_name(key_id)
        + spec_name(purpose)
        + struct.pack(">Q", generation)
        + spec_name(created)
    )


def test_anchor_and_record_mac_vectors() -> None:
    """Anchor slot, fingerprint, MAC key and a record's MAC follow docs/format.md byte for byte."""
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from fieldcrypt import anchor
    from fieldcrypt.keys import trust

    slot = hmac.new(b"fieldcrypt/v1/anchor-slot", "clé".encode(), hashlib.sha256).digest()[:20].hex()
    assert slot == trust.anchor_slot("clé") == doc_hex("anchor-slot")
    fingerprint = spec_key_id(ANCHOR_SECRET).hex()
    assert fingerprint == anchor.fingerprint(ANCHOR_SECRET) == doc_hex("anchor-fingerprint")
    mac_key = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"fieldcrypt/v1/key-record-mac").derive(
        ANCHOR_SECRET
    )
    assert mac_key == trust.mac_key(ANCHOR_SECRET)
    assert mac_key.hex() == doc_hex("mac-key")
    key_id = spec_key_id(DATA_KEY).hex()
    message = spec_mac_input("clé", key_id, "encryption", 1, "2026-01-02T03:04:05.000000+00:00")
    assert message.hex() == doc_hex("mac-input")
    record = fieldcrypt.DataKeyRecord(
        key_id, "clé", fieldcrypt.Purpose.ENCRYPTION, fieldcrypt.Status.ACTIVE, CREATED, generation=1
    )
    assert trust.mac_input(record) == message
    mac = hmac.new(mac_key, message, hashlib.sha256).digest()
    assert mac.hex() == doc_hex("record-mac")
    assert trust.sign(record, mac_key).mac == mac


def test_a_record_built_from_the_spec_is_chosen_and_an_edited_one_is_not(sqlite_engine: sa.Engine) -> None:
    """Rows written by hand from the spec (anchor, MACed key) are accepted; a flipped generation is not."""
    from fieldcrypt.keys import trust

    master = fieldcrypt.LocalMasterKey(MASTER)
    store = fieldcrypt.SqlKeyStore(sqlite_engine)
    store.create_table()
    slot = trust.anchor_slot("clé")

    def wrap(secret: bytes, key_id: str, purpose: str) -> bytes:
        context = {
            "fieldcrypt:keyring": "clé",
            "fieldcrypt:data-key-id": key_id,
            "fieldcrypt:purpose": purpose,
        }
        nonce = bytes(range(12))
        return nonce + AESGCM(MASTER).encrypt(nonce, secret, canonical_context(context))

    mac_key = trust.mac_key(ANCHOR_SECRET)
    stamp = "2026-01-02T03:04:05.000000+00:00"
    key_id = spec_key_id(DATA_KEY).hex()
    rows = [
        (slot, "anchor", 0, wrap(ANCHOR_SECRET, slot, "anchor")),
        (key_id, "encryption", 1, wrap(DATA_KEY, key_id, "encryption")),
    ]
    with sqlite_engine.begin() as conn:
        for row_id, purpose, generation, wrapped in rows:
            mac = hmac.new(mac_key, spec_mac_input("clé", row_id, purpose, generation, stamp), hashlib.sha256)
            conn.execute(
                sa.insert(store.table).values(
                    key_id=row_id, keyring="clé", purpose=purpose, status="active",
                    created_at=CREATED.replace(tzinfo=None), revision=0, generation=generation,
                    wraps=json.dumps({LOCAL_KEY_ID: base64.b64encode(wrapped).decode()}), mac=mac.hexdigest(),
                )
            )  # fmt: skip
    keyring = Keyring("clé", master, store, rotate_after=timedelta(days=36500))
    assert keyring.chosen_key_id() == key_id
    with sqlite_engine.begin() as conn:
        conn.execute(sa.update(store.table).where(store.table.c.key_id == key_id).values(generation=7))
    assert keyring.chosen_key_id() is None
