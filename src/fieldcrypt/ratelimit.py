"""Rate limiting toward KMS: a token bucket in front of a keyring's master keys.

A re-encryption job (SQL or DynamoDB) or a rewrap must not starve the application of its KMS
quota (KMS throttles per account and region, shared by every caller). Jobs need few KMS calls
(one unwrap per data key, thanks to the cache), but a table holding values under many historic
data keys, or a rewrap of thousands of keys, can burst; the bucket spreads those calls out.

The bucket sits on the job's own master keys (:func:`limited`), not on a botocore client: the
client may be shared with the application, whose calls must neither wait for the job nor be
counted against it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.master import MasterKey


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts of up to ``burst`` (default:
    one second's worth)."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:  # also refuses NaN
            raise ConfigurationError(
                "max_kms_calls_per_second must be positive (a number of KMS calls per second)"
            )
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.acquired = 0
        self.waited = 0.0

    def acquire(self) -> None:
        """Take a token, sleeping first if the bucket is empty."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            # May go negative: the wait below pays the debt, and a caller arriving meanwhile
            # waits for its own token after it, so concurrent callers leave at the set pace
            # without anyone sleeping under the lock.
            self._tokens -= 1
            self.acquired += 1
            self.waited += wait
        if wait > 0:
            self._sleep(wait)


class LimitedMasterKey:
    """A master key whose every wrap and unwrap first takes a token from ``bucket``."""

    def __init__(self, inner: MasterKey, bucket: TokenBucket) -> None:
        self.inner = inner
        self.bucket = bucket

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        self.bucket.acquire()
        return self.inner.wrap(data_key, context)

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        self.bucket.acquire()
        return self.inner.unwrap(wrapped, context)

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return self.inner.can_unwrap(recorded_key_id)

    def __repr__(self) -> str:
        return f"LimitedMasterKey({self.inner!r}, {self.bucket.rate}/s)"


def limited(keyring: Keyring, limit: float | TokenBucket | None) -> Keyring:
    """The same keyring (name, namespace, store, cache, rotation policy) with master keys limited to
    ``limit`` calls per second (a rate, or a bucket shared with other callers); None: as is."""
    if limit is None:
        return keyring
    bucket = limit if isinstance(limit, TokenBucket) else TokenBucket(limit)
    first, *others = (LimitedMasterKey(m, bucket) for m in keyring.master_keys)
    return Keyring(
        keyring.name,
        first,
        keyring.key_store,
        also_decrypt_with=others,
        rotate_after=keyring.rotate_after,
        rotate_after_encryptions=keyring.rotate_after_encryptions,
        refresh_every=keyring.refresh_every,
        cache=keyring.cache,
        blind_index_bytes=keyring.blind_index_bytes,
        namespace=keyring.namespace,
        # Subject keys are found where the keyring keeps them, not in its data-key store.
        subject_key_store=keyring.subject_key_store,
    )
