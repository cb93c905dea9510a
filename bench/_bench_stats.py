"""Interleaved rounds, medians and spreads: how every benchmark here times its variants.

The machines these run on are shared and noisy, so a variant is never timed in one block: each
round times every variant once, in a shuffled order, and a figure is the median over rounds with
its spread (the lowest and highest round). A difference between two variants (``over``) is taken
round by round, so both sides of one subtraction saw the same load.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A median with its spread over the rounds (all in the same unit)."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: list[float]) -> Figure:
        return cls(statistics.median(samples), min(samples), max(samples))

    def show(self, fmt: str = ".2f") -> str:
        return f"{self.median:{fmt}} [{self.low:{fmt}}-{self.high:{fmt}}]"


def interleaved(
    variants: Mapping[str, Callable[[], float]], rounds: int, *, seed: int = 0
) -> dict[str, list[float]]:
    """Run every variant once per round in a shuffled order; each returns its own measurement."""
    order = list(variants)
    shuffle = random.Random(seed).shuffle
    samples: dict[str, list[float]] = {name: [] for name in order}
    for _ in range(rounds):
        shuffle(order)
        for name in order:
            samples[name].append(variants[name]())
    return samples


def per_call_us(fn: Callable[[], object], n: int) -> Callable[[], float]:
    """A variant timing ``n`` calls of ``fn``, returning microseconds of CPU per call.

    CPU time of this thread (``time.thread_time``), not wall time: on a shared machine the time
    this process waits for a core is not its own cost (other processes still share the caches).
    """

    def run() -> float:
        start = time.thread_time()
        for _ in range(n):
            fn()
        return (time.thread_time() - start) / n * 1e6

    return run


def ratio(samples: Mapping[str, list[float]], name: str, base: str) -> Figure:
    """``name`` / ``base`` round by round."""
    return Figure.of([a / b for a, b in zip(samples[name], samples[base], strict=True)])


def over(samples: Mapping[str, list[float]], name: str, base: str, scale: float = 1.0) -> Figure:
    """(``name`` - ``base``) * ``scale`` round by round (e.g. seconds -> µs per row)."""
    return Figure.of([(a - b) * scale for a, b in zip(samples[name], samples[base], strict=True)])
