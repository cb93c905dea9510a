"""A token bucket on KMS requests, attached to KMS clients through botocore's event hooks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fieldcrypt.errors import ConfigurationError


class RateLimiter:
    """At most ``per_second`` acquisitions per second on average, bursts of up to ``burst``."""

    def __init__(
        self,
        per_second: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not per_second > 0:
            raise ConfigurationError("max_kms_calls_per_second must be positive")
        if burst < 1:
            raise ConfigurationError("burst must be at least 1")
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()
        self.acquired = 0

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.per_second)
            self._updated = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.per_second
            self._tokens -= 1  # may go negative: the wait below pays the debt
            self.acquired += 1
        if wait > 0:
            self._sleep(wait)

    @contextmanager
    def on_kms_clients(self, clients: list[Any]) -> Iterator[None]:
        """Make every request of ``clients`` wait for a token while the block runs."""

        def before_call(**_: Any) -> None:
            self.acquire()

        for client in clients:
            client.meta.events.register("before-call.kms.*", before_call, unique_id=f"fieldcrypt-{id(self)}")
        try:
            yield
        finally:
            for client in clients:
                client.meta.events.unregister("before-call.kms.*", unique_id=f"fieldcrypt-{id(self)}")
