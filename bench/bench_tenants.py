"""Per value: what choosing the keyring from the row (per tenant) adds over one fixed keyring.

    .venv/bin/python bench/bench_tenants.py [--n 20000] [--rounds 15] [--tenants 1000]

Warm cache: every tenant's keyring is made and holds its data key before timing (``--tenants``
of them, all held: ``max_tenants`` above it), and each per-column path has read, written and
indexed a value of every tenant once. Each round times every variant once, shuffled
(bench/_bench_stats.py); a figure is the median µs of CPU time of this thread per value
[lowest-highest round], and each overhead is taken round by round against its fixed-keyring twin.
The tenant of each call cycles through all the held tenants, so the per-tenant states are looked
up among 1,000 and more, not one kept hot.

- floors: raw AES-GCM seal (fresh nonce) and open of the same value;
- core: ``TenantKeyrings.keyring_for(t).encrypt/decrypt`` against ``Keyring.encrypt/decrypt``;
- SQLAlchemy, the column paths the ORM's flush and load hooks and Core's execute hook call per
  value: a per-tenant column's write (``row_binding.sealer``: seal under the row's tenant, then
  the bind processor) against a fixed keyring's bind processor; its read (the result processor,
  then ``row_binding.sealed_reader`` with the row's tenant, what the load hook calls) against the
  lean read (the result processor alone); and a searchable column's blind-index token per tenant
  against the fixed column's (``blind_index.tokenizer``). The "long way" read is
  ``row_binding.open_sealed`` (every lookup per value), the path per-tenant reads took before.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable

import sqlalchemy as sa
from _bench_stats import Figure, interleaved, over, per_call_us, ratio
from bench_instructions import _total
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import fieldcrypt
from fieldcrypt import _aead
from fieldcrypt.sqlalchemy import Encrypted, blind_index, row_binding

SSN = "123-45-6789"


def calls(tenant_count: int) -> tuple[dict[str, Callable[[], object]], int]:
    """Every variant as a function of no argument (one call, one value), set up warm."""
    store, master = fieldcrypt.MemoryKeyStore(), fieldcrypt.LocalMasterKey.generate()
    fixed = fieldcrypt.register(fieldcrypt.Keyring("pii", master, store))
    tenants = fieldcrypt.register(
        fieldcrypt.TenantKeyrings(
            "tpii",
            key_store=store,
            master_key_for=lambda t: master,
            max_tenants=tenant_count + 10,
            # Room for every tenant's data key and index key: a warm cache (the default 1,000
            # entries would be cycled through and every value would unwrap again).
            cache=fieldcrypt.DataKeyCache(max_entries=4 * tenant_count + 100),
        )
    )
    ids = [f"t{i}" for i in range(tenant_count)]
    fixed.warm_up()
    for t in ids:
        tenants.keyring_for(t).warm_up()
    place = fieldcrypt.Place("users", "ssn")
    data = SSN.encode()
    blob = fixed.encrypt(data, place)
    tenant_blobs = {t: tenants.keyring_for(t).encrypt(data, place) for t in ids}

    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(40)),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="pii")),
        sa.Column("tssn", Encrypted(sa.String(11), keyring="tpii", tenant="tenant_id")),
        sa.Column("email", Encrypted(sa.String(40), keyring="pii", searchable=True)),
        sa.Column("temail", Encrypted(sa.String(40), keyring="tpii", tenant="tenant_id", searchable=True)),
    )
    dialect = sa.create_engine("sqlite://").dialect
    plain_type, tenant_type = table.c.ssn.type, table.c.tssn.type
    write_fixed = plain_type.bind_processor(dialect)
    write_tenant = tenant_type.bind_processor(dialect)
    read_fixed = plain_type.result_processor(dialect, None)
    read_tenant = tenant_type.result_processor(dialect, None)
    seal_tenant = row_binding.sealer(tenant_type)
    open_tenant = row_binding.sealed_reader(tenant_type)
    token_fixed = blind_index.tokenizer(table.c.email.type)
    token_tenant = blind_index.tokenizer(table.c.temail.type)
    fixed_stored = bytes(write_fixed(SSN))
    stored = {t: bytes(write_tenant(seal_tenant(SSN, None, t, None))) for t in ids}
    for t in ids:  # every tenant's reader state and index state prepared: a warm cache
        assert open_tenant(read_tenant(stored[t]).blob, None, t) == SSN
        token_tenant(SSN, t)
    cycle = itertools.cycle(ids).__next__
    one = ids[tenant_count // 2]  # the "one tenant" variants: the same tenant every call (hot)

    raw = AESGCM(_aead.new_key())
    nonce, aad = os.urandom(12), b"\x01" * 21 + place.encoded
    raw_blob = raw.encrypt(nonce, data, aad)

    def tenant_encrypt(tenant: str | None = None) -> object:
        return tenants.keyring_for(tenant or cycle()).encrypt(data, place)

    def tenant_decrypt(tenant: str | None = None) -> object:
        t = tenant or cycle()
        return tenants.keyring_for(t).decrypt(tenant_blobs[t], place)

    def column_write_tenant(tenant: str | None = None) -> object:
        return write_tenant(seal_tenant(SSN, None, tenant or cycle(), None))

    def column_read_tenant(tenant: str | None = None) -> object:
        t = tenant or cycle()
        return open_tenant(read_tenant(stored[t]).blob, None, t)

    def column_read_long_way(tenant: str | None = None) -> object:
        t = tenant or cycle()
        return row_binding.open_sealed(tenant_type, read_tenant(stored[t]), None, tenant=t)

    made: dict[str, Callable[[], object]] = {
        "raw AES-GCM seal": lambda: raw.encrypt(os.urandom(12), data, aad),
        "raw AES-GCM open": lambda: raw.decrypt(nonce, raw_blob, aad),
        "fixed encrypt": lambda: fixed.encrypt(data, place),
        "fixed decrypt": lambda: fixed.decrypt(blob, place),
        "column write, fixed": lambda: write_fixed(SSN),
        "column read, fixed": lambda: read_fixed(fixed_stored),
        "token, fixed": lambda: token_fixed(SSN, None),
    }
    per_tenant: dict[str, Callable[[str | None], object]] = {
        "tenant encrypt": tenant_encrypt,
        "tenant decrypt": tenant_decrypt,
        "column write, per tenant": column_write_tenant,
        "column read, per tenant": column_read_tenant,
        "column read, long way": column_read_long_way,
        "token, per tenant": lambda t=None: token_tenant(SSN, t or cycle()),
    }
    for name, fn in per_tenant.items():
        made[f"{name} (all)"] = fn
    # One tenant: the same calls without the cycling, written out so no extra call is timed.
    one_blob, one_stored, keyring_one = tenant_blobs[one], stored[one], tenants.keyring_for(one)
    made["tenant encrypt (one)"] = lambda: tenants.keyring_for(one).encrypt(data, place)
    made["tenant decrypt (one)"] = lambda: tenants.keyring_for(one).decrypt(one_blob, place)
    made["column write, per tenant (one)"] = lambda: write_tenant(seal_tenant(SSN, None, one, None))
    made["column read, per tenant (one)"] = lambda: open_tenant(read_tenant(one_stored).blob, None, one)
    made["column read, long way (one)"] = lambda: row_binding.open_sealed(
        tenant_type, read_tenant(one_stored), None, tenant=one
    )
    made["token, per tenant (one)"] = lambda: token_tenant(SSN, one)
    assert keyring_one is tenants.keyring_for(one)
    return made, len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n, rounds = args.n, args.rounds
    if args.child:
        counted_child(args.tenants, n)
        return
    if args.instructions:
        report_instructions(args.tenants, n)
        return
    made, tenant_count = calls(args.tenants)
    variants = {name: per_call_us(fn, n) for name, fn in made.items()}
    samples = interleaved(variants, rounds)
    print(
        f"µs of CPU (thread time) per value, median [lowest-highest] of {rounds} interleaved rounds "
        f"of {n} calls; {tenant_count} tenants held, warm cache; (one): the same tenant every "
        "call, (all): cycling through every held tenant"
    )
    for name in variants:
        print(f"  {name:30} {Figure.of(samples[name]).show()}")
    print(
        "Overhead of per-row selection over a fixed keyring, one tenant (round by round; the "
        "issue's target: <= 1 µs)"
    )
    pairs = (
        ("tenant encrypt", "fixed encrypt"),
        ("tenant decrypt", "fixed decrypt"),
        ("column write, per tenant", "column write, fixed"),
        ("column read, per tenant", "column read, fixed"),
        ("column read, long way", "column read, fixed"),
        ("token, per tenant", "token, fixed"),
    )
    for name, base in pairs:
        print(f"  {name:30} {over(samples, f'{name} (one)', base).show()} µs")
    print(
        f"Cycling through all {tenant_count} tenants, over the same with one tenant: what a working "
        "set of that many keys and states costs (CPU caches), per-tenant keys' own price"
    )
    for name, _ in pairs:
        print(f"  {name:30} {over(samples, f'{name} (all)', f'{name} (one)').show()} µs")
    print(f"The column paths over the core, both cycling through all {tenant_count} tenants")
    for name, base in (
        ("column write, per tenant", "tenant encrypt"),
        ("column read, per tenant", "tenant decrypt"),
    ):
        print(f"  {name:30} {over(samples, f'{name} (all)', f'{base} (all)').show()} µs")
    print("Ratios to raw AES-GCM (round by round)")
    for name, base in (
        ("column write, fixed", "raw AES-GCM seal"),
        ("column write, per tenant (one)", "raw AES-GCM seal"),
        ("column read, fixed", "raw AES-GCM open"),
        ("column read, per tenant (one)", "raw AES-GCM open"),
    ):
        print(f"  {name:30} {ratio(samples, name, base).show()}x")


# Counted under callgrind: each fixed variant and its one-tenant twin (cycling through all tenants
# counts the same instructions; its cost is the CPU caches', which instructions do not show).
COUNTED = (
    ("column write, fixed", "column write, per tenant (one)"),
    ("column read, fixed", "column read, per tenant (one)"),
    ("column read, fixed", "column read, long way (one)"),
    ("token, fixed", "token, per tenant (one)"),
    ("fixed encrypt", "tenant encrypt (one)"),
    ("fixed decrypt", "tenant decrypt (one)"),
)
COUNTED_NAMES = sorted({name for pair in COUNTED for name in pair})


def counted_child(tenant_count: int, n: int) -> None:
    """Under callgrind: each counted variant ``n`` times between two dumps (bench_instructions.py)."""
    made, _ = calls(tenant_count)
    mark = os.getppid
    for name in COUNTED_NAMES:
        fn = made[name]
        for _ in range(200):
            fn()  # warm: specialised bytecode, caches filled
        mark()
        for _ in range(n):
            fn()
        mark()


def report_instructions(tenant_count: int, n: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", "--dump-before=os_getppid", f"--callgrind-out-file={out}"]
        subprocess.run(  # noqa: S603 - valgrind on this interpreter and this file
            [*command, sys.executable, __file__, "--child", "--n", str(n), "--tenants", str(tenant_count)],
            check=True,
            capture_output=True,
        )
        dumps = sorted(glob.glob(out + ".*"), key=lambda path: int(path.rsplit(".", 1)[1]))
        counts = [_total(path) / n for path in dumps]
    per = {name: counts[2 * i + 1] for i, name in enumerate(COUNTED_NAMES)}  # odd dumps: the loops
    print(f"Instructions per value (callgrind, {n} calls each, {tenant_count} tenants held)")
    for base, name in COUNTED:
        print(f"  {name:32} {per[name]:7.0f}  over {base}: {per[name] - per[base]:+6.0f}")


if __name__ == "__main__":
    main()
