"""Per value: what choosing the keyring from the row (per tenant) adds over one fixed keyring.

    .venv/bin/python bench/bench_tenants.py [--n 20000] [--rounds 15] [--tenants 1000]

Warm cache: every tenant's keyring is made and holds its data key before timing (``--tenants``
of them, all held: ``max_tenants`` above it). Each round times every variant once, shuffled
(bench/_bench_stats.py); a figure is the median µs of CPU per value [lowest-highest round], and
each overhead is taken round by round against its fixed-keyring twin.

- core: ``TenantKeyrings.keyring_for(t).encrypt/decrypt`` against ``Keyring.encrypt/decrypt``,
  with t a str and an int tenant id; and the choice alone (``keyring_for``, and
  ``Encrypted.row_keyring``, which also resolves the registered name);
- SQLAlchemy: a per-tenant column's write (seal with the row's tenant, then the bind processor)
  against a fixed keyring's bind processor, and its read (result processor, then the ORM's open
  with the row's tenant) against the lean read.
"""

from __future__ import annotations

import argparse

import sqlalchemy as sa
from _bench_stats import Figure, interleaved, over, per_call_us

import fieldcrypt
from fieldcrypt.sqlalchemy import Encrypted, row_binding

SSN = "123-45-6789"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tenants", type=int, default=1000)
    args = parser.parse_args()
    n, rounds = args.n, args.rounds

    store, master = fieldcrypt.MemoryKeyStore(), fieldcrypt.LocalMasterKey.generate()
    fixed = fieldcrypt.register(fieldcrypt.Keyring("pii", master, store))
    tenants = fieldcrypt.register(
        fieldcrypt.TenantKeyrings(
            "tpii", key_store=store, master_key_for=lambda t: master, max_tenants=args.tenants + 10
        )
    )
    fixed.warm_up()
    for t in range(args.tenants):
        tenants.keyring_for(t).warm_up()
    tenants.keyring_for("acme").warm_up()
    place = fieldcrypt.Place("users", "ssn")
    data = SSN.encode()
    blob = fixed.encrypt(data, place)
    tenant_blob = tenants.keyring_for("acme").encrypt(data, place)
    int_blob = tenants.keyring_for(417).encrypt(data, place)

    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(40)),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="pii")),
        sa.Column("tssn", Encrypted(sa.String(11), keyring="tpii", tenant="tenant_id")),
    )
    dialect = sa.create_engine("sqlite://").dialect
    plain_type, tenant_type = table.c.ssn.type, table.c.tssn.type
    write_fixed = plain_type.bind_processor(dialect)
    write_tenant = tenant_type.bind_processor(dialect)
    read_fixed = plain_type.result_processor(dialect, None)
    read_tenant = tenant_type.result_processor(dialect, None)
    fixed_stored = bytes(write_fixed(SSN))
    tenant_stored = bytes(write_tenant(row_binding.seal(tenant_type, SSN, None, tenant="acme")))

    variants = {
        "fixed encrypt": per_call_us(lambda: fixed.encrypt(data, place), n),
        "tenant encrypt (str id)": per_call_us(lambda: tenants.keyring_for("acme").encrypt(data, place), n),
        "tenant encrypt (int id)": per_call_us(lambda: tenants.keyring_for(417).encrypt(data, place), n),
        "fixed decrypt": per_call_us(lambda: fixed.decrypt(blob, place), n),
        "tenant decrypt (str id)": per_call_us(
            lambda: tenants.keyring_for("acme").decrypt(tenant_blob, place), n
        ),
        "tenant decrypt (int id)": per_call_us(lambda: tenants.keyring_for(417).decrypt(int_blob, place), n),
        "choice alone (keyring_for)": per_call_us(lambda: tenants.keyring_for("acme"), n),
        "choice by name (row_keyring)": per_call_us(lambda: tenant_type.row_keyring("acme"), n),
        "column write, fixed": per_call_us(lambda: write_fixed(SSN), n),
        "column write, per tenant": per_call_us(
            lambda: write_tenant(row_binding.seal(tenant_type, SSN, None, tenant="acme")), n
        ),
        "column read, fixed": per_call_us(lambda: read_fixed(fixed_stored), n),
        "column read, per tenant": per_call_us(
            lambda: row_binding.open_sealed(tenant_type, read_tenant(tenant_stored), None, tenant="acme"), n
        ),
    }
    samples = interleaved(variants, rounds)
    print(
        f"µs of CPU per value, median [lowest-highest] of {rounds} interleaved rounds of {n} calls; "
        f"{args.tenants + 1} tenants held, warm cache"
    )
    for name in variants:
        print(f"  {name:30} {Figure.of(samples[name]).show()}")
    print("Overhead of per-row selection over a fixed keyring (round by round; target <= 1 µs)")
    for name, base in (
        ("tenant encrypt (str id)", "fixed encrypt"),
        ("tenant encrypt (int id)", "fixed encrypt"),
        ("tenant decrypt (str id)", "fixed decrypt"),
        ("tenant decrypt (int id)", "fixed decrypt"),
        ("column write, per tenant", "column write, fixed"),
        ("column read, per tenant", "column read, fixed"),
    ):
        print(f"  {name:30} {over(samples, name, base).show()} µs")


if __name__ == "__main__":
    main()
