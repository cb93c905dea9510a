"""Per value, in instructions: fieldcrypt's column paths against raw AES-GCM and HMAC, repeatably.

    .venv/bin/python bench/bench_instructions.py [--n 3000]

Timings on a shared machine move with everyone else's load; instruction counts do not. This
runs bench_core.py's per-value variants under valgrind's callgrind (which must be installed), one
process, each variant ``--n`` times after a warm-up, and dumps the counters between variants (on
``os.getppid``, which nothing else here calls), so each variant's count is its own. Two runs of
the same code give the same figures to a fraction of a percent.

Instructions are not time: AES-GCM and SHA-256 run in few, wide instructions (AES-NI, SHA
extensions), so the ratios here over-weigh Python's share a little. They are what moves when
fieldcrypt's own code changes, and they are the same on every run.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile

VARIANTS = ("open", "lean", "text", "row", "seal", "write", "hmac", "token")
LABELS = {  # bench_core.py's variant names
    "open": "raw AES-GCM open",
    "lean": "column read, lean (binary)",
    "text": "column read, text",
    "row": "column read, row-bound",
    "seal": "raw AES-GCM seal",
    "write": "column write (binary)",
    "hmac": "raw HMAC-SHA256",
    "token": "blind-index token (insert)",
}


def child(n: int) -> None:
    """Under callgrind: bench_core.py's own setup, then each variant run between two dumps."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_core

    core = bench_core.variants()
    variants = {name: core[LABELS[name]] for name in VARIANTS}
    mark = os.getppid
    for name in VARIANTS:
        fn = variants[name]
        for _ in range(200):
            fn()  # warm: specialised bytecode, caches filled
        mark()  # dump: everything before this variant
        for _ in range(n):
            fn()
        mark()  # dump: this variant's n calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=3000, help="calls per variant")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.n)
        return
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", "--dump-before=os_getppid", f"--callgrind-out-file={out}"]
        subprocess.run(  # noqa: S603 - valgrind on this interpreter and this file
            [*command, sys.executable, __file__, "--child", "--n", str(args.n)],
            check=True,
            capture_output=True,
        )
        dumps = sorted(glob.glob(out + ".*"), key=lambda path: int(path.rsplit(".", 1)[1]))
        counts = [_total(path) / args.n for path in dumps]
    per = {name: counts[2 * i + 1] for i, name in enumerate(VARIANTS)}  # odd dumps: the loops
    print(f"Instructions per call (callgrind, {args.n} calls each)")
    for name in VARIANTS:
        print(f"  {LABELS[name]:30} {per[name]:8.0f}")
    print("Ratios and differences")
    print(f"  lean read / raw AES-GCM open:   {per['lean'] / per['open']:.2f}x (target <= 2)")
    print(f"  text read / lean read:          {per['text'] / per['lean']:.2f}x")
    print(f"  row-bound read / lean read:     {per['row'] / per['lean']:.2f}x")
    print(f"  column write / raw AES-GCM seal: {per['write'] / per['seal']:.2f}x")
    print(f"  token / raw HMAC-SHA256:        {per['token'] / per['hmac']:.2f}x")


def _total(path: str) -> int:
    with open(path) as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


if __name__ == "__main__":
    main()
