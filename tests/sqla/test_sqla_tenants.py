"""Per-tenant keyrings on SQLAlchemy columns: ``Encrypted(..., tenant="tenant_id")``.

Three tenants on each database: acme and globex under a shared KMS key, byok under its own KMS
key (moto). The keyring is chosen from the row before every write path (ORM flush, Core
executemany, ORM bulk insert/update, Core UPDATE, upserts), values are bound to their tenant, the
blind index is per tenant, and searches run within one tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError
from sqla_helpers import assert_ciphertext, raw_rows
from sqlalchemy import String, Text, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, load_only, mapped_column

import fieldcrypt
from fieldcrypt import ConfigurationError, DecryptionError, KeyAccessError, QueryNotSupportedError
from fieldcrypt import format as fmt
from fieldcrypt.sqlalchemy import Encrypted, Sealed, column_spec, execute_verified

TENANTS = ("acme", "globex", "byok")
SSN = "123-45-6789"


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "tenant_accounts"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    tenant_id: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(40), default="")
    ssn: Mapped[str | None] = mapped_column(
        Encrypted(String(11), keyring="tpii", tenant="tenant_id", searchable=True)
    )
    notes: Mapped[str | None] = mapped_column(
        Encrypted(Text(), keyring="tpii", tenant="tenant_id", bind_row=True)
    )


accounts = Account.__table__


@pytest.fixture
def kms_setup(aws_client: Callable[..., Any]) -> dict[str, Any]:
    """One KMS client, a shared KMS key and byok's own KMS key; ``disabled`` holds refused ARNs."""
    client = aws_client("kms", "us-east-1")
    shared = client.create_key(Description="fieldcrypt tenants shared")["KeyMetadata"]["Arn"]
    own = client.create_key(Description="fieldcrypt tenant byok")["KeyMetadata"]["Arn"]
    disabled: set[str] = set()

    def refuse_disabled(model: Any, params: dict[str, Any], **_: Any) -> None:
        # moto keeps using a disabled key (docs PITFALLS): answer as KMS does for one.
        if params.get("KeyId") in disabled:
            error = {"Code": "DisabledException", "Message": f"{params['KeyId']} is disabled."}
            raise ClientError({"Error": error}, model.name)

    client.meta.events.register("before-parameter-build.kms.*", refuse_disabled)
    return {"client": client, "shared": shared, "own": own, "disabled": disabled}


def make_tenants(store: fieldcrypt.KeyStore, kms: dict[str, Any]) -> fieldcrypt.TenantKeyrings:
    """The application's tenant keyrings: byok on its own KMS key, the others on the shared one."""
    shared = fieldcrypt.KmsMasterKey(kms["shared"], client=kms["client"])
    own = fieldcrypt.KmsMasterKey(kms["own"], client=kms["client"])
    return fieldcrypt.TenantKeyrings(
        "tpii", key_store=store, master_key_for=lambda tenant: own if tenant == "byok" else shared
    )


@pytest.fixture
def key_store(engine: sa.Engine, tmp_path: Path) -> fieldcrypt.SqlKeyStore:
    """A SQL key store in the database under test (SQLite: its own file; see docs/sqlalchemy.md)."""
    where = (
        sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}") if engine.dialect.name == "sqlite" else engine
    )
    store = fieldcrypt.SqlKeyStore(where)
    store.create_table()
    return store


@pytest.fixture
def tdb(
    engine: sa.Engine, key_store: fieldcrypt.SqlKeyStore, kms_setup: dict[str, Any]
) -> Iterator[sa.Engine]:
    """The database under test with the accounts table and "tpii" registered per tenant."""
    fieldcrypt.register(make_tenants(key_store, kms_setup), replace=True)
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)


def seed(db: sa.Engine) -> None:
    with Session(db) as session, session.begin():
        for n, tenant in enumerate(TENANTS, start=1):
            session.add(Account(id=n, tenant_id=tenant, name=tenant, ssn=SSN, notes=f"notes of {tenant}"))


def keyring_of(db: sa.Engine, column: str, account: int) -> str:
    """The keyring whose data key encrypted the stored value (from its key id, in the key store)."""
    (stored,) = raw_rows(db, f"SELECT {column} FROM tenant_accounts WHERE id = :id", id=account)[0]
    blob = assert_ciphertext(stored, SSN.encode(), b"notes")
    tenants = fieldcrypt.registry.get_tenant_keyrings("tpii")
    record = tenants.key_store.get(fmt.parse(blob).key_id.hex())
    assert record is not None
    return record.keyring


def ssns(db: sa.Engine) -> dict[int, str | None]:
    with Session(db) as session:
        return {a.id: a.ssn for a in session.scalars(select(Account))}


def test_orm_round_trip_under_each_tenants_keys(tdb: sa.Engine, kms_setup: dict[str, Any]) -> None:
    """Three tenants' values round-trip through the ORM; each raw value is ciphertext under its tenant's data key."""
    seed(tdb)
    with Session(tdb) as session:
        loaded = {a.tenant_id: (a.ssn, a.notes) for a in session.scalars(select(Account))}
    assert loaded == {t: (SSN, f"notes of {t}") for t in TENANTS}
    for n, tenant in enumerate(TENANTS, start=1):
        assert keyring_of(tdb, "ssn", n) == f"tpii/{tenant}"
        assert keyring_of(tdb, "notes", n) == f"tpii/{tenant}"
    tenants = fieldcrypt.registry.get_tenant_keyrings("tpii")
    assert {r.keyring for r in tenants.key_store.list("tpii/byok")} == {"tpii/byok"}
    assert all(set(r.wraps) == {kms_setup["own"]} for r in tenants.key_store.list("tpii/byok"))
    assert all(set(r.wraps) == {kms_setup["shared"]} for r in tenants.key_store.list("tpii/acme"))
    assert tenants.stored_tenants() == sorted(TENANTS)


def test_a_value_moved_to_another_tenants_row_fails(tdb: sa.Engine) -> None:
    """acme's ssn copied into globex's row (by SQL) raises DecryptionError; so does a row moved to another tenant."""
    seed(tdb)
    with tdb.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE tenant_accounts SET ssn = (SELECT ssn FROM (SELECT ssn FROM tenant_accounts WHERE id = 1) AS s) WHERE id = 2"
            )
        )
    with Session(tdb) as session, pytest.raises(DecryptionError) as caught:
        session.get(Account, 2)
    assert (caught.value.table, caught.value.column) == ("tenant_accounts", "ssn")
    with tdb.begin() as conn:
        conn.execute(sa.text("UPDATE tenant_accounts SET tenant_id = 'acme' WHERE id = 3"))
    with Session(tdb) as session, pytest.raises(DecryptionError):
        session.get(Account, 3)
    with Session(tdb) as session:
        assert session.get(Account, 1).ssn == SSN  # type: ignore[union-attr]


def test_prepared_tenant_states_never_open_another_tenants_value(tdb: sa.Engine) -> None:
    """After loads prepared every tenant's reader state, acme's value copied into globex's row still fails and each tenant reads its own."""
    seed(tdb)
    for _ in range(2):
        assert ssns(tdb) == {1: SSN, 2: SSN, 3: SSN}
    tenants = fieldcrypt.registry.get_tenant_keyrings("tpii")
    for tenant in TENANTS:  # the load hook's per-tenant readers kept their state with each keyring
        keyring, scratch = tenants.held_for(tenant)
        assert any(state[0] is keyring for state in scratch.values())
    with tdb.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE tenant_accounts SET ssn = (SELECT ssn FROM (SELECT ssn FROM tenant_accounts WHERE id = 1) AS s) WHERE id = 2"
            )
        )
    assert keyring_of(tdb, "ssn", 2) == "tpii/acme"  # the raw value is acme's ciphertext
    with Session(tdb) as session, pytest.raises(DecryptionError):
        session.get(Account, 2)
    with Session(tdb) as session:
        assert session.get(Account, 1).ssn == SSN  # type: ignore[union-attr]
        assert session.get(Account, 3).notes == "notes of byok"  # type: ignore[union-attr]


def test_core_executemany_chooses_each_rows_keyring(tdb: sa.Engine) -> None:
    """conn.execute(insert(t), [...]) over three tenants encrypts each row under its own tenant's keys."""
    rows = [{"id": n, "tenant_id": t, "ssn": SSN, "notes": f"n{n}"} for n, t in enumerate(TENANTS, start=1)]
    with tdb.begin() as conn:
        conn.execute(insert(accounts), rows)
    assert ssns(tdb) == {1: SSN, 2: SSN, 3: SSN}
    assert [keyring_of(tdb, "ssn", n) for n in (1, 2, 3)] == [f"tpii/{t}" for t in TENANTS]


def test_writes_that_do_not_name_the_tenant_are_refused(tdb: sa.Engine) -> None:
    """A row without its tenant, inline values and an UPDATE not naming the tenant are refused; nothing is written."""
    with tdb.begin() as conn, pytest.raises(ConfigurationError, match="chosen by the row's tenant_id"):
        conn.execute(insert(accounts), [{"id": 1, "tenant_id": "acme", "ssn": SSN}, {"id": 2, "ssn": SSN}])
    with tdb.begin() as conn, pytest.raises(sa.exc.StatementError, match=r"per tenant \(by tenant_id\)"):
        conn.execute(insert(accounts).values(id=3, tenant_id="acme", ssn=SSN))
    with Session(tdb) as session:
        session.add(Account(id=4, ssn=SSN))
        with pytest.raises(ConfigurationError, match="chosen by the row's tenant_id"):
            session.commit()
    assert raw_rows(tdb, "SELECT id FROM tenant_accounts") == []
    seed(tdb)
    with tdb.begin() as conn, pytest.raises(QueryNotSupportedError, match="which tenant's rows"):
        conn.execute(update(accounts).where(accounts.c.id == 1).values(ssn="999-99-9999"))
    with tdb.begin() as conn, pytest.raises(QueryNotSupportedError, match="must also write notes"):
        conn.execute(update(accounts).where(accounts.c.id == 1).values(tenant_id="globex", ssn=SSN))
    assert ssns(tdb) == {1: SSN, 2: SSN, 3: SSN}


def test_core_update_naming_the_tenant(tdb: sa.Engine) -> None:
    """UPDATE ... WHERE tenant_id = t (or setting tenant_id with the value) seals under that tenant."""
    seed(tdb)
    with tdb.begin() as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.tenant_id == "acme", accounts.c.id == 1)
            .values(ssn="111-11-1111")
        )
        conn.execute(
            update(accounts).where(accounts.c.id == 2).values(tenant_id="acme", ssn="222-22-2222", notes="n")
        )
    assert ssns(tdb) == {1: "111-11-1111", 2: "222-22-2222", 3: SSN}
    assert keyring_of(tdb, "ssn", 2) == keyring_of(tdb, "notes", 2) == "tpii/acme"


def test_orm_bulk_paths(tdb: sa.Engine) -> None:
    """ORM bulk INSERT, bulk UPDATE by primary key (tenant pinned in WHERE, or set with every
    per-tenant column) and bulk_*_mappings choose the row's tenant; without it, refused."""
    with Session(tdb) as session, session.begin():
        session.execute(insert(Account), [{"id": 1, "tenant_id": "acme", "ssn": SSN}])
        session.bulk_insert_mappings(Account, [{"id": 2, "tenant_id": "byok", "ssn": SSN}])  # type: ignore[arg-type]
    with Session(tdb) as session, session.begin():
        session.execute(
            update(Account).where(Account.tenant_id == "acme"),
            [{"id": 1, "ssn": "111-11-1111"}],
            execution_options={"synchronize_session": None},  # SQLAlchemy's rule with extra WHERE
        )
        session.bulk_update_mappings(
            Account,  # type: ignore[arg-type]
            [{"id": 2, "tenant_id": "byok", "ssn": "222-22-2222", "notes": "n"}],
        )
    assert ssns(tdb) == {1: "111-11-1111", 2: "222-22-2222"}
    assert [keyring_of(tdb, "ssn", n) for n in (1, 2)] == ["tpii/acme", "tpii/byok"]
    with Session(tdb) as session, pytest.raises(QueryNotSupportedError, match="which tenant's rows"):
        session.execute(update(Account), [{"id": 1, "ssn": "333-33-3333"}])
    with Session(tdb) as session, pytest.raises(QueryNotSupportedError, match="must also write notes"):
        session.execute(update(Account), [{"id": 1, "tenant_id": "acme", "ssn": "333-33-3333"}])
    assert ssns(tdb) == {1: "111-11-1111", 2: "222-22-2222"}


def test_orm_moving_a_row_to_another_tenant_reseals_it(tdb: sa.Engine) -> None:
    """Changing tenant_id on an object re-encrypts its values under the new tenant's keys, NULLs included."""
    seed(tdb)
    with Session(tdb) as session, session.begin():
        account = session.get(Account, 1)
        assert account is not None
        account.notes = None
    with Session(tdb) as session, session.begin():
        account = session.get(Account, 1)
        assert account is not None
        account.tenant_id = "globex"
    assert keyring_of(tdb, "ssn", 1) == "tpii/globex"
    with Session(tdb) as session:
        moved = session.get(Account, 1)
        assert moved is not None
        assert (moved.tenant_id, moved.ssn, moved.notes) == ("globex", SSN, None)


def test_search_runs_within_one_tenant(tdb: sa.Engine) -> None:
    """Equal SSNs of three tenants have three tokens; a search names its tenant and finds only its row."""
    seed(tdb)
    tokens = {bytes(t) for (t,) in raw_rows(tdb, "SELECT ssn_bidx FROM tenant_accounts")}
    assert len(tokens) == 3
    with Session(tdb) as session:
        for n, tenant in enumerate(TENANTS, start=1):
            found = session.scalars(
                select(Account).where(Account.tenant_id == tenant, Account.ssn == SSN)
            ).all()
            assert [a.id for a in found] == [n]
        assert (
            session.scalars(select(Account).where(Account.tenant_id == "acme", Account.ssn.in_([SSN, "x"])))
            .one()
            .id
            == 1
        )
        assert (
            session.scalars(select(Account).where(Account.tenant_id == "acme", Account.ssn != SSN)).all()
            == []
        )
        with pytest.raises(QueryNotSupportedError, match="search runs within one tenant"):
            session.scalars(select(Account).where(Account.ssn == SSN)).all()
    with tdb.connect() as conn:
        rows = execute_verified(
            conn, select(accounts.c.id).where(accounts.c.tenant_id == "globex", accounts.c.ssn == SSN)
        )
        assert rows.scalars().all() == [2]
        with pytest.raises(QueryNotSupportedError):
            conn.execute(select(accounts.c.id).where(accounts.c.tenant_id == "globex", accounts.c.ssn == SSN))


def test_a_planted_token_is_not_a_match(tdb: sa.Engine) -> None:
    """acme's token copied into another acme row (other SSN): the verified search drops that row."""
    seed(tdb)
    with Session(tdb) as session, session.begin():
        session.add(Account(id=9, tenant_id="acme", ssn="999-99-9999"))
    with tdb.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE tenant_accounts SET ssn_bidx = (SELECT b FROM (SELECT ssn_bidx AS b FROM tenant_accounts WHERE id = 1) AS s) WHERE id = 9"
            )
        )
    with Session(tdb) as session:
        found = session.scalars(select(Account).where(Account.tenant_id == "acme", Account.ssn == SSN)).all()
    assert [a.id for a in found] == [1]


def test_upserts_move_tenant_and_value_together(tdb: sa.Engine) -> None:
    """An upsert assigning tenant_id and ssn from the proposed row works; one without the other is refused."""
    from test_sqla_upserts import upsert

    seed(tdb)
    every = upsert(
        tdb, accounts, ["id"], lambda new: {"tenant_id": new.tenant_id, "ssn": new.ssn, "notes": new.notes}
    )
    with tdb.begin() as conn:
        conn.execute(every, [{"id": 1, "tenant_id": "globex", "ssn": "111-11-1111", "notes": "n"}])
    assert ssns(tdb)[1] == "111-11-1111"
    assert keyring_of(tdb, "ssn", 1) == keyring_of(tdb, "notes", 1) == "tpii/globex"
    for set_ in (
        lambda new: {"ssn": new.ssn},
        lambda new: {"tenant_id": new.tenant_id, "ssn": new.ssn},  # notes would stay acme's
        lambda new: {"tenant_id": new.tenant_id, "ssn": "999-99-9999", "notes": new.notes},
    ):
        with (
            tdb.begin() as conn,
            pytest.raises(QueryNotSupportedError, match=r"per tenant|bound to its row or tenant"),
        ):
            conn.execute(upsert(tdb, accounts, ["id"], set_), [{"id": 2, "tenant_id": "acme", "ssn": SSN}])


def test_core_reads_are_sealed_and_open_with_the_tenant(tdb: sa.Engine) -> None:
    """Core SELECT gives Sealed values; ColumnSpec.decrypt opens them with the row's tenant, not another's."""
    seed(tdb)
    with tdb.connect() as conn:
        row = conn.execute(select(accounts.c.tenant_id, accounts.c.ssn).where(accounts.c.id == 1)).one()
    assert type(row.ssn) is Sealed
    spec = column_spec("tenant_accounts", "ssn", accounts)
    assert spec.decrypt(row.ssn, tenant=row.tenant_id) == SSN
    with pytest.raises(DecryptionError):
        spec.decrypt(row.ssn, tenant="globex")
    with pytest.raises(ConfigurationError, match="pass tenant="):
        spec.decrypt(row.ssn)


def test_orm_needs_the_tenant_column_loaded(tdb: sa.Engine) -> None:
    """Loading a per-tenant column without its tenant column raises ConfigurationError saying so."""
    seed(tdb)
    with Session(tdb) as session, pytest.raises(ConfigurationError, match="load tenant_id with it"):
        session.scalars(select(Account).options(load_only(Account.ssn))).all()


def test_a_disabled_tenant_key_fails_only_that_tenants_reads(
    tdb: sa.Engine, key_store: fieldcrypt.SqlKeyStore, kms_setup: dict[str, Any]
) -> None:
    """byok's KMS key disabled: a fresh process reading byok's row gets KeyAccessError naming byok; others read."""
    seed(tdb)
    kms_setup["disabled"].add(kms_setup["own"])
    fieldcrypt.register(make_tenants(key_store, kms_setup), replace=True)  # a process with a cold cache
    with Session(tdb) as session:
        with pytest.raises(KeyAccessError, match="tenant 'byok'") as caught:
            session.get(Account, 3)
        assert caught.value.tenant == "byok"
        assert caught.value.code == "DisabledException"
        assert SSN not in str(caught.value)
    with Session(tdb) as session:
        assert [session.get(Account, n).ssn for n in (1, 2)] == [SSN, SSN]  # type: ignore[union-attr]


def test_declarations_are_checked(sqlite_engine: sa.Engine) -> None:
    """A missing or encrypted tenant column, an empty tenant option and a keyring of the wrong kind are refused, named."""
    fieldcrypt.testing.local_tenant_keyrings("tpii")
    meta = sa.MetaData()
    missing = sa.Table(
        "t_missing",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", Encrypted(String(11), keyring="tpii", tenant="org")),
    )
    hidden = sa.Table(
        "t_hidden",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("org", Encrypted(String(10), keyring="tpii", tenant="org")),
        sa.Column("ssn", Encrypted(String(11), keyring="tpii", tenant="org")),
    )
    meta.create_all(sqlite_engine)
    with sqlite_engine.begin() as conn, pytest.raises(ConfigurationError, match="which the table lacks"):
        conn.execute(insert(missing), [{"id": 1, "ssn": SSN}])
    with sqlite_engine.begin() as conn, pytest.raises(ConfigurationError, match="must be plaintext"):
        conn.execute(insert(hidden), [{"id": 1, "org": "acme", "ssn": SSN}])
    with pytest.raises(ConfigurationError, match="tenant must be the name"):
        Encrypted(String(11), keyring="tpii", tenant="")
    fieldcrypt.testing.local_keyring("plain")
    table = sa.Table(
        "t_plain",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("org", String(10)),
        sa.Column("ssn", Encrypted(String(11), keyring="plain", tenant="org")),
        sa.Column("tax", Encrypted(String(11), keyring="tpii")),
    )
    with pytest.raises(ConfigurationError, match="not per tenant"):
        column_spec("t_plain", "ssn", table).seal(SSN, tenant="acme")
    with pytest.raises(ConfigurationError, match="must name its tenant column"):
        column_spec("t_plain", "tax", table).seal(SSN)
