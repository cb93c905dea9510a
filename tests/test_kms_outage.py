"""KMS outages with a warm cache: reads, writes and searches go on; just after another process
rotated, writes keep the key this process holds (within its bounds) and switch when KMS is back.

KMS is moto behind a TCP proxy on 127.0.0.1 that can stop answering: it keeps accepting
connections and never replies, the way a hung endpoint behaves."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import Keyring, KmsMasterKey, Place
from fieldcrypt.rotation import admin

SSN = Place("users", "ssn")
REFRESH = timedelta(seconds=0.5)
# Generous enough that a loaded machine's moto answers in time while KMS is up (0.3 s failed under
# a load average of 10); every wait on the hung proxy costs this much.
READ_TIMEOUT = 1.5


class HangingProxy:
    """Forwards TCP to moto while up; when hung, accepts and reads but never answers."""

    def __init__(self, target: str) -> None:
        parsed = urlparse(target)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.up = threading.Event()
        self.up.set()
        self.unanswered = 0  # connections and requests that arrived while hung
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client = self.server.accept()[0]
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            self.sockets.append(client)
            if not self.up.is_set():
                self.unanswered += 1
            else:
                upstream = socket.create_connection(self.target)
                self.sockets.append(upstream)
                threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
                threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.up.is_set():  # hung: requests on open connections go unanswered too
                    sink.sendall(data)
                else:
                    self.unanswered += 1
        except OSError:
            return

    def close(self) -> None:
        self.stopped.set()
        for sock in [self.server, *self.sockets]:
            sock.close()


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[HangingProxy]:
    """A proxy in front of moto that the test can hang and revive."""
    proxy = HangingProxy(moto_endpoint)
    yield proxy
    proxy.close()


def _writer(arn: str, proxy: HangingProxy, store: fieldcrypt.SqlKeyStore, **options: Any) -> Keyring:
    """An application process: KMS through the proxy, short timeouts, quick refreshes."""
    master = KmsMasterKey(
        arn, endpoint_url=proxy.url, connect_timeout=0.3, read_timeout=READ_TIMEOUT, max_attempts=1
    )
    return Keyring("pii", master, store, refresh_every=REFRESH, **options)


@pytest.fixture
def store(sqlite_engine: sa.Engine) -> fieldcrypt.SqlKeyStore:
    """The key store every process of the test shares (SQLite file)."""
    store = fieldcrypt.SqlKeyStore(sqlite_engine)
    store.create_table()
    return store


def test_warm_cache_reads_writes_and_searches_through_a_hung_kms(
    kms_key: str, proxy: HangingProxy, store: fieldcrypt.SqlKeyStore
) -> None:
    """With its keys cached, a process encrypts, decrypts and searches while KMS never answers."""
    writer = _writer(kms_key, proxy, store)
    before = writer.encrypt("123-45-6789", SSN)
    token = writer.blind_index("123-45-6789", SSN)
    proxy.up.clear()
    time.sleep(REFRESH.total_seconds() * 1.5)  # past a refresh: the key store is read again
    during = writer.encrypt("987-65-4321", SSN)
    assert b"987-65-4321" not in during
    assert writer.decrypt(before, SSN) == b"123-45-6789"
    assert writer.decrypt(during, SSN) == b"987-65-4321"
    assert writer.blind_index_candidates("123-45-6789", SSN) == [token]
    assert proxy.unanswered == 0  # no KMS call was attempted


def test_writes_keep_the_held_key_when_kms_hangs_just_after_another_process_rotated(
    kms_key: str,
    proxy: HangingProxy,
    store: fieldcrypt.SqlKeyStore,
    aws_client: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The new key cannot be unwrapped: writes go on under the held key, logged; the switch follows KMS's return."""
    writer = _writer(kms_key, proxy, store)
    old_key = writer.key_id_of(writer.encrypt("a", SSN))
    other = Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    new_key = other.rotate().key_id
    proxy.up.clear()
    time.sleep(REFRESH.total_seconds() * 1.5)
    with caplog.at_level(logging.WARNING, logger="fieldcrypt"):
        during = [writer.encrypt(f"v{i}", SSN) for i in range(20)]
    assert {writer.key_id_of(v) for v in during} == {old_key}
    assert (
        f"cannot unwrap its new data key {new_key} (ReadTimeoutError); still encrypting under {old_key}"
        in (caplog.text)
    )
    assert caplog.text.count("cannot unwrap") == 1  # KMS is tried once per refresh, not per value
    assert [other.decrypt(v, SSN) for v in during] == [f"v{i}".encode() for i in range(20)]
    proxy.up.set()
    time.sleep(REFRESH.total_seconds() * 1.5)
    after = writer.encrypt("b", SSN)
    assert writer.key_id_of(after) == new_key
    assert other.decrypt(after, SSN) == b"b"


def test_the_held_key_is_not_used_past_its_budget_in_an_outage(
    kms_key: str, proxy: HangingProxy, store: fieldcrypt.SqlKeyStore, aws_client: Callable[..., Any]
) -> None:
    """The fallback stays within rotate_after_encryptions: the next write fails with KeyAccessError."""
    writer = _writer(kms_key, proxy, store, rotate_after_encryptions=5)
    writer.encrypt("a", SSN)
    Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store).rotate()
    proxy.up.clear()
    time.sleep(REFRESH.total_seconds() * 1.5)
    written = _write_until_refused(writer)
    assert 1 <= written <= 4  # the held key's budget of 5 held one value before the outage
    with pytest.raises(fieldcrypt.KeyAccessError, match="did not answer Decrypt in time"):
        writer.encrypt("still refused", SSN)


def _write_until_refused(writer: Keyring, most: int = 10) -> int:
    """How many values ``writer`` encrypts before a KeyAccessError (at most ``most``)."""
    for written in range(most):
        try:
            writer.encrypt(f"v{written}", SSN)
        except fieldcrypt.KeyAccessError:
            return written
    return most


def test_a_held_key_destroyed_since_is_not_kept(
    kms_key: str, proxy: HangingProxy, store: fieldcrypt.SqlKeyStore, aws_client: Callable[..., Any]
) -> None:
    """If the held key was destroyed by a key administrator, the outage fails writes instead."""
    writer = _writer(kms_key, proxy, store)
    held = writer.key_id_of(writer.encrypt("a", SSN))
    administrator = Keyring("pii", KmsMasterKey(kms_key, client=aws_client("kms")), store)
    administrator.rotate()
    admin.destroy(administrator, held)
    proxy.up.clear()
    time.sleep(REFRESH.total_seconds() * 1.5)
    with pytest.raises(fieldcrypt.KeyAccessError):
        writer.encrypt("b", SSN)
