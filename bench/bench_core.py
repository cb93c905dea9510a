"""Microbenchmark: µs per SSN encrypt/decrypt through Keyring vs the raw AES-GCM floor, and sizes.

Run: python bench/bench_core.py [--n 200000]
The raw floor is `AESGCM.encrypt(os.urandom(12), ssn, aad)` / `AESGCM.decrypt(...)` with the same
key and an AAD of the same length, measured in the same process, so ratios are meaningful.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import fieldcrypt
from fieldcrypt import format as fmt

SSN = b"123-45-6789"


def per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Best-of-`repeats` mean time per call, in microseconds."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args().n

    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    place = fieldcrypt.Place("users", "ssn")
    blob = keyring.encrypt(SSN, place)
    aad = blob[: fmt.HEADER_BYTES] + place.encode()
    raw = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    raw_blob = raw.encrypt(nonce, SSN, aad)

    results = {
        "plaintext copy (bytes(ssn))": per_call_us(lambda: bytes(SSN), n),
        "raw AESGCM encrypt (+urandom nonce)": per_call_us(lambda: raw.encrypt(os.urandom(12), SSN, aad), n),
        "raw AESGCM decrypt": per_call_us(lambda: raw.decrypt(nonce, raw_blob, aad), n),
        "Keyring.encrypt": per_call_us(lambda: keyring.encrypt(SSN, place), n),
        "Keyring.decrypt": per_call_us(lambda: keyring.decrypt(blob, place), n),
    }
    enc_ratio = results["Keyring.encrypt"] / results["raw AESGCM encrypt (+urandom nonce)"]
    dec_ratio = results["Keyring.decrypt"] / results["raw AESGCM decrypt"]

    print(f"fieldcrypt {fieldcrypt.__version__} core benchmark, n={n}, best of 5")
    print(f"{'operation':40} {'µs/op':>8} {'x plain':>8} {'x raw':>7}")
    plain = results["plaintext copy (bytes(ssn))"]
    for name, us in results.items():
        floor = results["raw AESGCM decrypt" if "decrypt" in name else "raw AESGCM encrypt (+urandom nonce)"]
        print(f"{name:40} {us:8.2f} {us / plain:8.1f} {us / floor:7.2f}")
    print()
    print(f"encrypt / raw AES-GCM: {enc_ratio:.2f}x (target <= 2.5x)")
    print(f"decrypt / raw AES-GCM: {dec_ratio:.2f}x (target <= 3x)")
    print(
        f"stored size of an 11-byte SSN: {len(blob)} bytes binary (target <= 60), {len(fmt.to_text(blob))} chars text (target <= 80)"
    )
    samples = [len(keyring.encrypt(os.urandom(k), place)) - k for k in (0, 1, 100, 10_000)]
    print(f"overhead per value: {statistics.mode(samples)} bytes (version 1 + key id 20 + nonce 12 + tag 16)")


if __name__ == "__main__":
    main()
