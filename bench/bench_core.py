"""Per value: what fieldcrypt adds over the raw cryptography, and KMS calls for 100,000 values.

    .venv/bin/python bench/bench_core.py [--n 20000] [--rounds 15] [--kms-values 100000]

Part 1 times, in interleaved rounds (bench/_bench_stats.py), one 11-byte SSN through:
- the floors: raw ``AESGCM.encrypt`` with a fresh ``os.urandom(12)`` nonce, raw ``AESGCM.decrypt``,
  and one-shot HMAC-SHA256, with the same key size and associated-data length fieldcrypt uses;
- ``Keyring.encrypt`` / ``decrypt`` / ``blind_index``;
- the ``Encrypted`` column type's processors: binary write, the lean read (binary, no row
  binding), the text read (base64), the row-bound read (result processor, then the ORM's open
  with the row's key) and the blind-index token an insert stores.
Each figure is the median µs per value over the rounds, [lowest-highest round]; ratios and
differences are taken round by round.

Part 3 measures the import of ``fieldcrypt.sqlalchemy`` in fresh interpreters against SQLAlchemy's
own (core, ORM and the two dialect modules fieldcrypt's column types name): the CPU time of the
whole interpreter, and the sum of ``-X importtime``'s self-times (wall clock), each difference
taken pair by pair.

Part 2 counts KMS requests: one fresh process encrypts ``--kms-values`` values under a KMS master
key (moto's server on 127.0.0.1) with a SQL key store in a SQLite file, another fresh process
decrypts them all. Both should stay at a handful (target <= 2 each): one data key, one unwrap.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from _bench_stats import Figure, interleaved, over, per_call_us, ratio
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import fieldcrypt
from fieldcrypt import _aead
from fieldcrypt import keyring as keyring_module
from fieldcrypt.sqlalchemy import Encrypted, row_binding
from fieldcrypt.sqlalchemy import blind_index as sql_blind_index

SSN = "123-45-6789"


def variants() -> dict[str, Callable[[], object]]:
    """Each per-value path, set up once (keyring warm, processors built): name -> one call.

    bench_instructions.py counts these same callables under callgrind.
    """
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    fieldcrypt.register(keyring, replace=True)
    keyring.warm_up()
    table = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ssn", Encrypted(sa.String(11), keyring="pii")),
        sa.Column("ssn_text", Encrypted(sa.String(11), keyring="pii", storage="text")),
        sa.Column("ssn_row", Encrypted(sa.String(11), keyring="pii", bind_row=True)),
        sa.Column("ssn_search", Encrypted(sa.String(11), keyring="pii", searchable=True)),
    )
    dialect = sa.create_engine("sqlite://").dialect
    lean, text, bound, search = (table.c[c].type for c in ("ssn", "ssn_text", "ssn_row", "ssn_search"))
    write = lean.bind_processor(dialect)
    read_lean = lean.result_processor(dialect, None)
    read_text = text.result_processor(dialect, None)
    read_bound = bound.result_processor(dialect, None)
    blob, stored_text = bytes(write(SSN)), text.bind_processor(dialect)(SSN)
    bound_blob = row_binding.seal(bound, SSN, 7).blob
    place = fieldcrypt.Place("users", "ssn")

    raw = AESGCM(_aead.new_key())
    aad = os.urandom(len(blob[:21] + place.encoded))
    nonce = os.urandom(12)
    raw_blob = raw.encrypt(nonce, SSN.encode(), aad)
    hmac_key = _aead.new_key()
    hmac_input = keyring_module.BLIND_INDEX_LABEL + place.encoded + SSN.encode()

    open_row_bound = row_binding.sealed_reader(bound)  # what the ORM's load hook calls

    def read_row_bound() -> object:
        return open_row_bound(read_bound(bound_blob).blob, 7)

    return {
        "raw AES-GCM seal": lambda: raw.encrypt(os.urandom(12), SSN.encode(), aad),
        "raw AES-GCM open": lambda: raw.decrypt(nonce, raw_blob, aad),
        "raw HMAC-SHA256": lambda: _aead.hmac_sha256(hmac_key, hmac_input),
        "Keyring.encrypt": lambda: keyring.encrypt(SSN, place),
        "Keyring.decrypt": lambda: keyring.decrypt(blob, place),
        "Keyring.blind_index": lambda: keyring.blind_index(SSN, place),
        "column write (binary)": lambda: write(SSN),
        "column read, lean (binary)": lambda: read_lean(blob),
        "column read, text": lambda: read_text(stored_text),
        "column read, row-bound": read_row_bound,
        "blind-index token (insert)": lambda: sql_blind_index.token(search, SSN),
    }


def per_value(n: int, rounds: int) -> None:
    variants_ = variants()
    samples = interleaved({name: per_call_us(fn, n) for name, fn in variants_.items()}, rounds)
    print(f"Part 1: µs per value, median [lowest-highest] of {rounds} interleaved rounds of {n} calls")
    for name in variants_:
        print(f"  {name:30} {Figure.of(samples[name]).show()}")
    print("Targets")
    lean_x = ratio(samples, "column read, lean (binary)", "raw AES-GCM open")
    print(f"  lean read / raw AES-GCM open:          {lean_x.show()}x   (target <= 2)")
    for name in ("column read, text", "column read, row-bound"):
        gap = over(samples, name, "column read, lean (binary)")
        print(f"  {name[13:]:10} read over the lean read:     {gap.show()} µs (target <= 1)")
    print(
        f"  write / raw AES-GCM seal:              {ratio(samples, 'column write (binary)', 'raw AES-GCM seal').show()}x"
    )
    print(
        f"  token - raw HMAC:                      {over(samples, 'blind-index token (insert)', 'raw HMAC-SHA256').show()} µs"
    )


def kms_child(phase: str, values: int, scratch: str, endpoint: str, key_arn: str) -> None:
    """One fresh process: encrypt (or decrypt) ``values`` values, print the KMS requests made."""
    from fieldcrypt.keys.kms import kms_client

    kms = kms_client("us-east-1", endpoint_url=endpoint)
    calls: list[str] = []
    kms.meta.events.register("before-call.kms.*", lambda model, **_: calls.append(model.name))
    store = fieldcrypt.SqlKeyStore(sa.create_engine(f"sqlite:///{scratch}/keys.db"))
    if phase == "write":
        store.create_table()
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.KmsMasterKey(key_arn, client=kms), store)
    place = fieldcrypt.Place("users", "ssn")
    path = os.path.join(scratch, "values.pickle")
    if phase == "write":
        blobs = [keyring.encrypt(f"{i:09d}", place) for i in range(values)]
        with open(path, "wb") as out:
            pickle.dump(blobs, out)
    else:
        with open(path, "rb") as source:
            blobs = pickle.load(source)  # noqa: S301 - our own file, written a moment ago
        assert all(keyring.decrypt(b, place) == f"{i:09d}".encode() for i, b in enumerate(blobs))
    print(len(calls), ",".join(calls))


def kms_calls(values: int) -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.update(env)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        from fieldcrypt.keys.kms import kms_client

        key_arn = kms_client("us-east-1", endpoint_url=endpoint).create_key(
            Description=f"bench {uuid.uuid4()}"
        )["KeyMetadata"]["Arn"]
        print(f"\nPart 2: KMS requests for {values} values, each phase in a fresh process")
        with tempfile.TemporaryDirectory() as scratch:
            for phase in ("write", "read"):
                command = [
                    sys.executable,
                    __file__,
                    "--kms-child",
                    phase,
                    str(values),
                    scratch,
                    endpoint,
                    key_arn,
                ]
                out = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
                count, names = (
                    out.stdout.split()[-2:] if " " in out.stdout.strip() else (out.stdout.strip(), "")
                )
                print(f"  {phase:5} {count:>3} KMS requests ({names or 'none'})  (target <= 2)")
    finally:
        server.stop()


IMPORTS = {
    "fieldcrypt.sqlalchemy": "import fieldcrypt.sqlalchemy",
    "SQLAlchemy (core, ORM, the dialects fieldcrypt names)": (
        "import sqlalchemy, sqlalchemy.orm, sqlalchemy.dialects.postgresql, sqlalchemy.dialects.mysql"
    ),
}


def import_cost(rounds: int) -> None:
    """Fresh interpreters, alternating: CPU ms to start and import, and -X importtime's sum."""
    cpu: dict[str, list[float]] = {name: [] for name in IMPORTS}
    traced: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(rounds):
        for name, statement in IMPORTS.items():
            code = f"import time; {statement}; print(time.process_time())"
            out = subprocess.run(  # noqa: S603 - this interpreter, our own statement
                [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
            )
            cpu[name].append(float(out.stdout.split()[-1]) * 1000)
            traced[name].append(_traced_ms(out.stderr))
    first, second = IMPORTS
    print(f"\nPart 3: import cost, {rounds} fresh interpreters each, alternating")
    for name in IMPORTS:
        print(
            f"  {name}: CPU {Figure.of(cpu[name]).show('.0f')} ms, importtime {Figure.of(traced[name]).show('.0f')} ms"
        )
    for label, samples in (("CPU", cpu), ("-X importtime (wall)", traced)):
        extra = Figure.of([a - b for a, b in zip(samples[first], samples[second], strict=True)])
        print(f"  fieldcrypt.sqlalchemy over SQLAlchemy, {label}: {extra.show('.0f')} ms (target <= 150)")


def _traced_ms(trace: str) -> float:
    """The sum of every module's self time in an ``-X importtime`` trace."""
    total = 0
    for line in trace.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            total += int(line[len("import time:") :].split("|")[0])
    return total / 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000, help="calls per variant per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--kms-values", type=int, default=100_000)
    parser.add_argument("--import-rounds", type=int, default=7)
    parser.add_argument("--kms-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kms_child:
        phase, values, scratch, endpoint, key_arn = args.kms_child
        kms_child(phase, int(values), scratch, endpoint, key_arn)
        return
    print(f"fieldcrypt {fieldcrypt.__version__} core benchmark")
    per_value(args.n, args.rounds)
    if args.kms_values:
        kms_calls(args.kms_values)
    if args.import_rounds:
        import_cost(args.import_rounds)


if __name__ == "__main__":
    main()
