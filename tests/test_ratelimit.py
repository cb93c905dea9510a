"""The token bucket shared by the SQL engine, the DynamoDB re-encryptor and `keys rewrap`."""

from __future__ import annotations

import pytest

import fieldcrypt
from fieldcrypt.ratelimit import LimitedMasterKey, TokenBucket, limited


class FakeTime:
    """A clock that only moves when the bucket sleeps, recording each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_paces_after_the_default_burst() -> None:
    """At 2/s with the default burst (one second's worth), the third and fourth calls wait 0.5 s each."""
    time = FakeTime()
    bucket = TokenBucket(2, clock=time.clock, sleep=time.sleep)
    for _ in range(4):
        bucket.acquire()
    assert time.slept == [0.5, 0.5]
    assert bucket.waited == pytest.approx(1.0)


def test_bucket_with_burst_one_spaces_every_request() -> None:
    """At 2 requests per second and a burst of 1, five requests wait 2 seconds in all."""
    time = FakeTime()
    bucket = TokenBucket(2.0, burst=1, clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        bucket.acquire()
    assert sum(time.slept) == pytest.approx(2.0)
    assert bucket.acquired == 5


@pytest.mark.parametrize("rate", [0, -1.0, float("nan")])
def test_bucket_refuses_a_rate_that_is_not_positive(rate: float) -> None:
    """Zero, negative and NaN rates are configuration errors naming the option."""
    with pytest.raises(
        fieldcrypt.ConfigurationError,
        match=r"^max_kms_calls_per_second must be positive \(a number of KMS calls per second\)$",
    ):
        TokenBucket(rate)


def test_limited_keyring_takes_a_token_per_wrap_and_unwrap(local_keyring: fieldcrypt.Keyring) -> None:
    """Creating a data key (wrap) and opening it in a fresh cache (unwrap) each take one token."""
    bucket = TokenBucket(1000.0)
    job = limited(local_keyring, bucket)
    assert isinstance(job.master_key, LimitedMasterKey)
    assert job.name == local_keyring.name
    place = fieldcrypt.Place("users", "ssn")
    blob = job.encrypt(b"123-45-6789", place)
    assert bucket.acquired == 2  # the keyring's anchor, then its data key
    fresh = limited(fieldcrypt.Keyring("pii", local_keyring.master_key, local_keyring.key_store), bucket)
    assert fresh.decrypt(blob, place) == b"123-45-6789"
    assert bucket.acquired == 3
    unlimited = fieldcrypt.Keyring("pii", local_keyring.master_key, local_keyring.key_store)
    assert unlimited.decrypt(blob, place) == b"123-45-6789"  # unwraps too, but takes no token
    assert bucket.acquired == 3


def test_limited_without_a_rate_is_the_keyring_itself(local_keyring: fieldcrypt.Keyring) -> None:
    """No limit: the very same keyring object, with no wrapper in front of its master key."""
    assert limited(local_keyring, None) is local_keyring
