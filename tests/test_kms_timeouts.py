"""A KMS endpoint that accepts connections and never answers fails a call within a known bound."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

import fieldcrypt
from fieldcrypt import KmsMasterKey
from fieldcrypt.keys import kms

ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONTEXT = {"fieldcrypt:keyring": "pii"}


@pytest.fixture
def silent_endpoint() -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_hung_kms_fails_within_the_retry_budget(silent_endpoint: tuple[str, list[socket.socket]]) -> None:
    """Unwrap against a silent endpoint raises KeyAccessError after ~attempts x read_timeout, not minutes."""
    url, accepted = silent_endpoint
    key = KmsMasterKey(ARN, endpoint_url=url, connect_timeout=0.5, read_timeout=0.4, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(fieldcrypt.KeyAccessError, match="did not answer Decrypt in time") as info:
        key.unwrap(b"x" * 64, CONTEXT)
    elapsed = time.monotonic() - started
    # 2 attempts x 0.4 s read, plus standard-mode backoff (< 1 s for one retry), plus slack.
    assert 0.8 <= elapsed < 3.0
    assert info.value.code == "ReadTimeoutError"
    assert len(accepted) >= 2  # the call was retried (a bounded number of times), not abandoned


def test_default_bounds_are_a_few_seconds() -> None:
    """The shared client's timeouts and attempts are explicit: at most ~18 s for one hung call."""
    key = KmsMasterKey(ARN, endpoint_url="http://127.0.0.1:9")
    config = key.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2.0, 3.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    worst = kms.DEFAULT_MAX_ATTEMPTS * (kms.DEFAULT_CONNECT_TIMEOUT + kms.DEFAULT_READ_TIMEOUT) + 3
    assert worst <= 20


def test_bounds_are_validated() -> None:
    """A zero timeout or zero attempts is a configuration error at construction."""
    with pytest.raises(fieldcrypt.ConfigurationError, match="timeouts positive"):
        KmsMasterKey(ARN, endpoint_url="http://127.0.0.1:9", read_timeout=0)
