"""The Alembic column operations on per-tenant and per-tenant-and-subject columns, on SQLite,
PostgreSQL and MariaDB: each row under its own tenant's keyring (and subject's key), or with
``tenant=`` one tenant's rows only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

import fieldcrypt
import fieldcrypt.alembic
from fieldcrypt import rotation
from fieldcrypt.rotation.rowkeys import one_tenant
from fieldcrypt.sqlalchemy import Encrypted, Sealed, column_spec
from fieldcrypt.testing import local_tenant_keyrings

TENANTS = ("acme", "globex", "initech")
NOTE = Encrypted(sa.String(200), keyring="spii", tenant="tenant_id")
BODY = Encrypted(sa.String(200), keyring="spii", tenant="tenant_id", subject="user_id", bind_row=True)
metadata = sa.MetaData()
members = sa.Table(
    "op_tenant_members",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(80), nullable=False),
    sa.Column("note", sa.String(200)),  # plaintext until encrypt_column
    sa.Column("body", BODY),
)
models = sa.MetaData()
sa.Table(  # the same table as the models declare it once note is encrypted
    "op_tenant_members",
    models,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(80), nullable=False),
    sa.Column("note", NOTE),
    sa.Column("body", BODY),
)


@pytest.fixture
def tenants() -> fieldcrypt.TenantKeyrings:
    """TenantKeyrings "spii", each tenant on its own local master key."""
    return local_tenant_keyrings("spii")


@pytest.fixture
def table(engine: sa.Engine, tenants: fieldcrypt.TenantKeyrings) -> Iterator[sa.Engine]:
    """Two rows per tenant: note in plaintext, body under its row's subject's key in its tenant's keyring."""
    metadata.create_all(engine)
    rows = [
        {
            "id": n * 10 + i,
            "tenant_id": t,
            "user_id": f"user{i}",
            "note": f"{t} note {i}",
            "body": f"{t} body {i}",
        }
        for n, t in enumerate(TENANTS)
        for i in range(2)
    ]
    with engine.begin() as conn:
        conn.execute(members.insert(), rows)
    yield engine
    metadata.drop_all(engine)


def _op(engine: sa.Engine, name: str, *args: object, **kwargs: object) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            getattr(Operations(context), name)(*args, **kwargs)


def _raw(engine: sa.Engine, column: str) -> dict[int, bytes]:
    with engine.connect() as conn:
        found = conn.execute(sa.text(f"SELECT id, {column} FROM op_tenant_members")).all()
    return {i: bytes(v) for i, v in found}


def _tenant_of(row: int) -> str:
    return TENANTS[row // 10]


def test_encrypt_column_without_tenant_uses_each_rows_tenants_keyring(
    table: sa.Engine, tenants: fieldcrypt.TenantKeyrings
) -> None:
    """op.encrypt_column(type_=per-tenant) encrypts every row under its own tenant's keyring: ciphertext on disk, opened only by that tenant."""
    _op(table, "encrypt_column", "op_tenant_members", "note", type_=NOTE)
    spec = column_spec("op_tenant_members", "note", models)
    raw = _raw(table, "note")
    for row, blob in raw.items():
        assert blob[0] == fieldcrypt.format.VERSION_1
        assert b"note" not in blob
        tenant = _tenant_of(row)
        assert spec.decrypt(blob, tenant=tenant) == f"{tenant} note {row % 10}"
        other = TENANTS[(TENANTS.index(tenant) + 1) % 3]
        with pytest.raises(fieldcrypt.DecryptionError):
            spec.decrypt(blob, tenant=other)


def test_reencrypt_column_with_tenant_rewrites_only_that_tenants_rows(
    table: sa.Engine, tenants: fieldcrypt.TenantKeyrings
) -> None:
    """op.reencrypt_column(..., tenant="globex", rotate=True) moves globex's rows to its new key; the other tenants' bytes stay as they were."""
    _op(table, "encrypt_column", "op_tenant_members", "note", type_=NOTE)
    before = _raw(table, "note")
    _op(table, "reencrypt_column", "op_tenant_members", "note", type_=NOTE, tenant="globex", rotate=True)
    after = _raw(table, "note")
    assert sorted(i for i in after if after[i] != before[i]) == [10, 11]
    globex = tenants.keyring_for("globex")
    assert {globex.key_id_of(after[i]) for i in (10, 11)} == {globex.current_key_id()}
    with pytest.raises(fieldcrypt.ConfigurationError, match="rotate one tenant"):
        _op(table, "reencrypt_column", "op_tenant_members", "note", type_=NOTE, rotate=True)


def test_tenant_needs_a_per_tenant_type() -> None:
    """tenant= on a column without a tenant column is refused when the operation is built."""
    with pytest.raises(fieldcrypt.ConfigurationError, match="no tenant column"):
        fieldcrypt.alembic.ops.ReencryptColumnOp(
            "t", "c", type_=Encrypted(sa.String(10), keyring="pii"), tenant="acme"
        )


def test_reencrypt_and_verify_of_a_tenant_and_subject_column_after_one_subjects_shred(
    table: sa.Engine, tenants: fieldcrypt.TenantKeyrings
) -> None:
    """acme's user0 shredded: op.reencrypt_column over every tenant completes, moving a planted shared-key value and skipping nothing else; verify counts acme's user0 row as shredded and the rest decrypt, globex's user0 included."""
    spec = column_spec("op_tenant_members", "body", models)
    plain = rotation.ColumnSpec(
        spec.table, spec.column, keyring="spii", codec="text", bind_row=True, tenant_column="tenant_id"
    )
    with table.begin() as conn:  # initech's user1 row as written before the column was per subject
        shared = plain.encrypt("initech body 1", 21, tenant="initech")
        conn.execute(members.update().where(members.c.id == 21).values(body=Sealed(shared)))  # type: ignore[arg-type]
    tenants.keyring_for("acme").shred_subject("user0")
    before = _raw(table, "body")
    _op(table, "reencrypt_column", "op_tenant_members", "body", type_=BODY)
    after = _raw(table, "body")
    assert sorted(i for i in after if after[i] != before[i]) == [21]
    assert after[21][0] == fieldcrypt.format.VERSION_1
    assert b"initech" not in after[21]
    checked = rotation.verify(table, spec)
    assert (checked.decrypted, checked.shredded_subject, checked.failed, checked.shredded_rows) == (
        5,
        1,
        0,
        ["0"],
    )
    acme, rows = one_tenant(spec, tenants.keyring_for("acme"))
    one = rotation.verify(table, acme, tenant=rows)
    assert (one.decrypted, one.shredded_subject) == (1, 1)
