"""Per value: what fieldcrypt's metrics cost with the otel extra absent, installed alone, and recording.

    .venv/bin/python bench/bench_metrics.py [--n 20000] [--rounds 15]

Each round runs one fresh interpreter per case, in a shuffled order (bench/_bench_stats.py):

- ``absent``: ``import opentelemetry`` fails (an import hook blocks it), as without the extra;
- ``api-only``: the API is importable and no SDK provider is set, so nothing records;
- ``sdk``: an SDK ``MeterProvider`` with an ``InMemoryMetricReader`` given to
  ``fieldcrypt.metrics.configure`` (keyrings then count their values), collected after the timing.

Each interpreter times, in interleaved rounds of its own, ``Keyring.encrypt`` / ``decrypt`` of an
11-byte SSN, the same calls through the class (``Keyring.decrypt(keyring, ...)``, which skips an
instance's counting wrapper: the uncounted path in the same process), and raw ``AESGCM`` seal and
open with fieldcrypt's key size and associated-data length. Figures are CPU µs per call, medians
over rounds [lowest-highest]; differences and ratios are taken round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _bench_stats import Figure, interleaved, over, per_call_us, ratio

CASES = ("absent", "api-only", "sdk")
BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(name)
sys.meta_path.insert(0, Block())
"""
SSN = b"123-45-6789"


def worker(case: str, n: int, rounds: int) -> dict[str, float]:
    """Time one case in this interpreter; returns median CPU µs per call by variant."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    import fieldcrypt
    from fieldcrypt import _aead, metrics

    reader = None
    if case == "sdk":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        reader = InMemoryMetricReader()
        metrics.configure(MeterProvider(metric_readers=[reader]))
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    keyring.warm_up()
    counted = "decrypt" in vars(keyring)
    assert counted == (case == "sdk"), f"{case}: keyring counted={counted}"
    place = fieldcrypt.Place("users", "ssn")
    blob = keyring.encrypt(SSN, place)
    encrypt, decrypt = keyring.encrypt, keyring.decrypt
    cls = type(keyring)
    raw = AESGCM(_aead.new_key())
    aad = os.urandom(21 + len(place.encoded))
    nonce = os.urandom(12)
    sealed = raw.encrypt(nonce, SSN, aad)
    variants = {
        "encrypt": per_call_us(lambda: encrypt(SSN, place), n),
        "decrypt": per_call_us(lambda: decrypt(blob, place), n),
        "encrypt via class": per_call_us(lambda: cls.encrypt(keyring, SSN, place), n),
        "decrypt via class": per_call_us(lambda: cls.decrypt(keyring, blob, place), n),
        "raw seal": per_call_us(lambda: raw.encrypt(os.urandom(12), SSN, aad), n),
        "raw open": per_call_us(lambda: raw.decrypt(nonce, sealed, aad), n),
    }
    samples = interleaved(variants, rounds)
    out = {name: Figure.of(values).median for name, values in samples.items()}
    if reader is not None:
        started = time.thread_time()
        data = reader.get_metrics_data()
        out["collect ms"] = (time.thread_time() - started) * 1e3
        encrypted = [
            p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "fieldcrypt.values.encrypted"
            for p in m.data.data_points
        ]
        assert encrypted, "nothing was counted"
        assert encrypted[0] >= n * rounds, encrypted  # every value timed was counted
    return out


def run_case(case: str, n: int, rounds: int) -> dict[str, float]:
    script = Path(__file__).resolve()
    code = (BLOCK if case == "absent" else "") + (
        f"import sys, json; sys.path.insert(0, {str(script.parent)!r}); sys.argv = ['x']\n"
        f"import bench_metrics; print(json.dumps(bench_metrics.worker({case!r}, {n}, {rounds})))"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, running this file's own code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="calls per timing")
    parser.add_argument(
        "--rounds", type=int, default=15, help="interleaved rounds (one process per case each)"
    )
    parser.add_argument("--inner-rounds", type=int, default=5, help="rounds inside each process")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}

    def timed(case: str) -> float:
        results[case].append(run_case(case, args.n, args.inner_rounds))
        return 0.0

    interleaved({case: (lambda c=case: timed(c)) for case in CASES}, args.rounds)
    series = {
        f"{case}: {name}": [r[name] for r in results[case]] for case in CASES for name in results[case][0]
    }
    print(f"CPU µs per call, median [lowest-highest] over {args.rounds} rounds (one process per case)")
    for name, values in series.items():
        print(f"  {name:32} {Figure.of(values).show('.3f')}")
    print("Round by round:")
    for case in CASES:
        for op, floor in (("encrypt", "raw seal"), ("decrypt", "raw open")):
            shown = ratio(series, f"{case}: {op}", f"{case}: {floor}").show()
            print(f"  {case:8} {op} / raw AES-GCM {floor.split()[1]:4}          {shown} x")
    for case in ("api-only", "sdk"):
        for op in ("encrypt", "decrypt"):
            shown = over(series, f"{case}: {op}", f"absent: {op}").show(".3f")
            print(f"  {case:8} {op} over absent, µs             {shown}")
    for case in CASES:
        for op in ("encrypt", "decrypt"):
            shown = over(series, f"{case}: {op}", f"{case}: {op} via class").show(".3f")
            print(f"  {case:8} {op} over its class call, µs      {shown}")


if __name__ == "__main__":
    main()
