"""Producers with unchanged SQLAlchemy and PynamoDB models: they write, readers in another region read.

The producer's KMS client refuses Decrypt (and every other KMS call but GetPublicKey), as a
producer role's IAM policy would. Issue 12's figures: 10,000 rows through the ORM and 1,000
DynamoDB items written by the producer, all read by a reader in us-west-2, none by the producer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pynamodb.attributes import UnicodeAttribute
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import fieldcrypt
from fieldcrypt.keys.kms_rsa import KmsRsaMasterKey, RsaProducerKey
from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedAttribute, EncryptedModel
from fieldcrypt.sqlalchemy import Encrypted

ROWS, ITEMS = 10_000, 1_000


class Base(DeclarativeBase):
    pass


class Signup(Base):
    """What a sign-up form writes: the application's model, unchanged for the producer."""

    __tablename__ = "signups"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str] = mapped_column(String(100))
    ssn: Mapped[str] = mapped_column(Encrypted(String(11), keyring="pii"))


class Member(Base):
    """A model with a searchable column: only readers may write it."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ssn: Mapped[str] = mapped_column(Encrypted(String(11), keyring="pii", searchable=True))


class Upload(EncryptedModel):
    """A partner upload's item."""

    class Meta:
        table_name = "uploads"
        billing_mode = "PAY_PER_REQUEST"

    upload_id = UnicodeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="pii")


class SearchableUpload(EncryptedModel):
    class Meta:
        table_name = "searchable_uploads"
        billing_mode = "PAY_PER_REQUEST"

    upload_id = UnicodeAttribute(hash_key=True)
    ssn = EncryptedAttribute(UnicodeAttribute(), keyring="pii")
    ssn_bidx = BlindIndexAttribute(of="ssn")


def ssn(i: int) -> str:
    return f"{i // 10_000 % 1000:03d}-{i // 100 % 100:02d}-{i % 10_000:04d}"


@pytest.fixture
def producer_kms(aws_client: Callable[..., Any], deny_kms: Callable[..., list[str]]) -> tuple[Any, list[str]]:
    """The producer's us-east-1 KMS client: every KMS call but GetPublicKey refused; (client, refused calls)."""
    client = aws_client("kms", "us-east-1")
    return client, deny_kms(client)


def producer(rsa_mrk: dict[str, str], client: Any, store: fieldcrypt.KeyStore) -> fieldcrypt.Keyring:
    """Registers the producer's "pii" keyring (us-east-1, public key only), as its process would."""
    master = RsaProducerKey.from_kms(rsa_mrk["us-east-1"], client=client)
    return fieldcrypt.register(fieldcrypt.Keyring("pii", master, store), replace=True)


def reader(
    rsa_mrk: dict[str, str], aws_client: Callable[..., Any], store: fieldcrypt.KeyStore
) -> fieldcrypt.Keyring:
    """Registers a us-west-2 reader's "pii" keyring: Decrypt through the local replica."""
    master = KmsRsaMasterKey(rsa_mrk["us-east-1"], region="us-west-2", client=aws_client("kms", "us-west-2"))
    return fieldcrypt.register(fieldcrypt.Keyring("pii", master, store), replace=True)


@pytest.fixture
def sql(sqlite_engine: sa.Engine) -> Iterator[tuple[sa.Engine, fieldcrypt.SqlKeyStore]]:
    """The models' tables and a SqlKeyStore in one SQLite database."""
    store = fieldcrypt.SqlKeyStore(sqlite_engine)
    store.create_table()
    Base.metadata.create_all(sqlite_engine)
    yield sqlite_engine, store
    Base.metadata.drop_all(sqlite_engine)


def test_orm_producer_writes_10000_rows_a_reader_in_another_region_reads_them(
    rsa_mrk: dict[str, str],
    aws_client: Callable[..., Any],
    producer_kms: tuple[Any, list[str]],
    sql: tuple[sa.Engine, fieldcrypt.SqlKeyStore],
) -> None:
    """10,000 ORM rows from a producer without kms:Decrypt: ciphertext stored, all read in us-west-2, none by the producer."""
    engine, store = sql
    client, refused = producer_kms
    producer(rsa_mrk, client, store)
    with Session(engine) as session:
        session.add_all(Signup(id=i, email=f"u{i}@example.com", ssn=ssn(i)) for i in range(ROWS))
        session.commit()
    with engine.connect() as conn:
        raw = conn.execute(sa.text("select ssn from signups where id = 1234")).scalar_one()
        assert isinstance(raw, bytes)
        assert raw[0] == 1
        assert ssn(1234).encode() not in raw
    with Session(engine) as session, pytest.raises(fieldcrypt.KeyAccessError, match="write-only producer"):
        session.get(Signup, 1234)
    with Session(engine) as session, pytest.raises(fieldcrypt.KeyAccessError, match="write-only producer"):
        session.scalars(sa.select(Signup.ssn)).all()
    assert refused == []

    reader(rsa_mrk, aws_client, store)
    with Session(engine) as session:
        read = {row.id: row.ssn for row in session.execute(sa.select(Signup.id, Signup.ssn))}
    assert read == {i: ssn(i) for i in range(ROWS)}


def test_orm_producer_cannot_write_a_searchable_column(
    rsa_mrk: dict[str, str],
    kms_key: str,
    aws_client: Callable[..., Any],
    producer_kms: tuple[Any, list[str]],
    sql: tuple[sa.Engine, fieldcrypt.SqlKeyStore],
) -> None:
    """A searchable column needs the blind-index key, which producers never hold: the flush fails, nothing is written."""
    engine, store = sql
    producer(rsa_mrk, producer_kms[0], store)
    with Session(engine) as session:
        session.add(Member(id=1, ssn="123-45-6789"))
        with pytest.raises(sa.exc.StatementError) as caught:
            session.commit()
    assert isinstance(caught.value.orig, fieldcrypt.KeyAccessError)
    assert "cannot compute blind indexes" in str(caught.value.orig)
    assert "123-45-6789" not in str(caught.value)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from members")).scalar_one() == 0
    assert all(r.purpose is not fieldcrypt.Purpose.BLIND_INDEX for r in store.list("pii"))
    with Session(engine) as session, pytest.raises(fieldcrypt.KeyAccessError, match="cannot search"):
        session.scalars(sa.select(Member).where(Member.ssn == "123-45-6789")).all()
    # The application writes the searchable column (a symmetric master key; it reads producers'
    # values through the RSA key) and finds it.
    kms = aws_client("kms", "us-east-1")
    app = fieldcrypt.Keyring(
        "pii",
        fieldcrypt.KmsMasterKey(kms_key, client=kms),
        store,
        also_decrypt_with=[KmsRsaMasterKey(rsa_mrk["us-east-1"], client=kms)],
    )
    fieldcrypt.register(app, replace=True)
    with Session(engine) as session:
        session.add(Member(id=1, ssn="123-45-6789"))
        session.commit()
        assert session.scalars(sa.select(Member.id).where(Member.ssn == "123-45-6789")).all() == [1]


@pytest.fixture
def dynamodb(moto_endpoint: str, aws_client: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    """Key-store and item tables in us-east-1 and us-west-2: {region: DynamoDBKeyStore}."""
    stores = {}
    tables = {"us-east-1": (Upload, SearchableUpload), "us-west-2": (Upload,)}
    for region, models in tables.items():
        stores[region] = fieldcrypt.DynamoDBKeyStore("producer_keys", client=aws_client("dynamodb", region))
        stores[region].create_table()
        for model in models:
            model.Meta.host, model.Meta.region = moto_endpoint, region
            model._connection = None
            model.create_table(wait=True)
    yield stores
    for region, models in tables.items():
        for table in ("producer_keys", *(m.Meta.table_name for m in models)):
            aws_client("dynamodb", region).delete_table(TableName=table)
    for model in (Upload, SearchableUpload):
        model._connection = None


def use_region(region: str) -> None:
    for model in (Upload, SearchableUpload):
        model.Meta.region = region
        model._connection = None


def replicate(aws_client: Callable[..., Any], tables: tuple[str, ...]) -> None:
    """Copy every item from us-east-1 to us-west-2 (what a DynamoDB global table does)."""
    source, target = aws_client("dynamodb", "us-east-1"), aws_client("dynamodb", "us-west-2")
    for table in tables:
        for page in source.get_paginator("scan").paginate(TableName=table):
            items = page["Items"]
            for start in range(0, len(items), 25):  # BatchWriteItem's limit
                chunk = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
                target.batch_write_item(RequestItems={table: chunk})


def test_pynamodb_producer_writes_1000_items_a_reader_in_another_region_reads_them(
    rsa_mrk: dict[str, str],
    aws_client: Callable[..., Any],
    producer_kms: tuple[Any, list[str]],
    dynamodb: dict[str, Any],
) -> None:
    """1,000 items from a us-east-1 producer: ciphertext stored, all read in us-west-2 after replication, none by the producer."""
    client, refused = producer_kms
    producer(rsa_mrk, client, dynamodb["us-east-1"])
    use_region("us-east-1")
    with Upload.batch_write() as batch:
        for i in range(ITEMS):
            batch.save(Upload(f"u-{i}", ssn=ssn(i)))
    raw = aws_client("dynamodb", "us-east-1").get_item(TableName="uploads", Key={"upload_id": {"S": "u-7"}})
    assert set(raw["Item"]["ssn"]) == {"B"}
    assert ssn(7).encode() not in raw["Item"]["ssn"]["B"]
    with pytest.raises(fieldcrypt.KeyAccessError, match="write-only producer"):
        Upload.get("u-7")
    with pytest.raises(fieldcrypt.KeyAccessError, match="write-only producer"):
        list(Upload.scan())
    assert refused == []

    replicate(aws_client, ("producer_keys", "uploads"))
    reader(rsa_mrk, aws_client, dynamodb["us-west-2"])
    use_region("us-west-2")
    assert {u.upload_id: u.ssn for u in Upload.scan()} == {f"u-{i}": ssn(i) for i in range(ITEMS)}


def test_pynamodb_producer_cannot_write_a_blind_index(
    rsa_mrk: dict[str, str],
    producer_kms: tuple[Any, list[str]],
    dynamodb: dict[str, Any],
    aws_client: Callable[..., Any],
) -> None:
    """A model with a BlindIndexAttribute refuses to save in a producer, and the table stays empty."""
    producer(rsa_mrk, producer_kms[0], dynamodb["us-east-1"])
    use_region("us-east-1")
    with pytest.raises(fieldcrypt.KeyAccessError, match="cannot compute blind indexes"):
        SearchableUpload("u-1", ssn="123-45-6789").save()
    assert aws_client("dynamodb", "us-east-1").scan(TableName="searchable_uploads")["Items"] == []
