"""DataKeyCache: every bound holds, and concurrent misses collapse into one load."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from fieldcrypt import DataKeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_max_age() -> None:
    """A key older than max_age is loaded again."""
    clock = Clock()
    cache = DataKeyCache(max_age=timedelta(seconds=10), clock=clock)
    loads: list[int] = []
    cache.get(b"k", lambda: loads.append(1) or "v")
    clock.now = 9.9
    cache.get(b"k", lambda: loads.append(1) or "v")
    clock.now = 10.0
    cache.get(b"k", lambda: loads.append(1) or "v")
    assert len(loads) == 2


def test_entries_are_reloaded_after_max_uses() -> None:
    """After max_uses lookups the key is loaded again."""
    cache = DataKeyCache(max_uses=3)
    loads: list[int] = []
    for _ in range(7):
        cache.get(b"k", lambda: loads.append(1) or "v")
    assert len(loads) == 3  # uses 1-3, 4-6, 7


def test_oldest_loaded_entries_are_evicted_beyond_max_entries() -> None:
    """The cache never holds more than max_entries keys; the least recently loaded goes first."""
    cache = DataKeyCache(max_entries=2)
    cache.get(b"a", lambda: 1)
    cache.get(b"b", lambda: 2)
    cache.get(b"a", lambda: 1)
    cache.get(b"c", lambda: 3)
    assert len(cache) == 2
    assert cache.fresh(b"a") is None
    assert (cache.fresh(b"b"), cache.fresh(b"c")) == (2, 3)


def test_concurrent_misses_make_one_load() -> None:
    """Eight threads missing the same key at once wait for a single loader."""
    cache = DataKeyCache()
    loads: list[int] = []
    barrier = threading.Barrier(8)

    def slow_load() -> str:
        loads.append(1)
        time.sleep(0.2)
        return "key"

    results: list[str] = []

    def work() -> None:
        barrier.wait()
        results.append(cache.get(b"k", slow_load))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1]
    assert results == ["key"] * 8


def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    """When the loader raises, waiting threads get the error and the next call tries again."""
    cache = DataKeyCache()

    def failing() -> str:
        raise RuntimeError("KMS down")

    with pytest.raises(RuntimeError, match="KMS down"):
        cache.get(b"k", failing)
    assert cache.get(b"k", lambda: "ok") == "ok"


@pytest.mark.parametrize("kwargs", [{"max_age": timedelta(0)}, {"max_uses": 0}, {"max_entries": 0}])
def test_bounds_are_validated(kwargs: dict[str, object]) -> None:
    """Zero or negative bounds are refused at construction."""
    from fieldcrypt import ConfigurationError

    with pytest.raises(ConfigurationError):
        DataKeyCache(**kwargs)  # type: ignore[arg-type]
