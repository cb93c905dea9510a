"""Helpers for users' own test suites (and ours): local keyrings, counters of key use, and
:func:`moto_server` (moto in this process, with its KMS fixed for multi-region and RSA keys; see
:mod:`fieldcrypt.testing.moto_shims`).

Nothing here is for production: a :func:`local_keyring` keeps its keys in memory and dies with the
process.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from fieldcrypt.keyring import Keyring
from fieldcrypt.keys.master import LocalMasterKey, MasterKey
from fieldcrypt.registry import register
from fieldcrypt.stores.base import KeyStore
from fieldcrypt.stores.memory import MemoryKeyStore
from fieldcrypt.tenants import TenantKeyrings


def moto_server(*, port: int = 0, fake_credentials: bool = True) -> AbstractContextManager[str]:
    """Run moto's server in this process on 127.0.0.1, KMS fixed; a context manager yielding its URL.

    See :func:`fieldcrypt.testing.moto_shims.moto_server` (moto is imported only when called).
    """
    from fieldcrypt.testing import moto_shims

    return moto_shims.moto_server(port=port, fake_credentials=fake_credentials)


def local_keyring(
    name: str = "pii", *, key_store: KeyStore | None = None, register_it: bool = True, **options: Any
) -> Keyring:
    """A keyring with a fresh local master key (and an in-memory store unless one is given).

    Registered under ``name`` (replacing any previous one) unless ``register_it=False``.
    """
    keyring = Keyring(name, LocalMasterKey.generate(), key_store or MemoryKeyStore(), **options)
    if register_it:
        register(keyring, replace=True)
    return keyring


def local_tenant_keyrings(
    name: str = "pii", *, key_store: KeyStore | None = None, register_it: bool = True, **options: Any
) -> TenantKeyrings:
    """Per-tenant keyrings, each tenant on its own fresh local master key (made on its first use,
    the same one for the life of this object), keys in memory unless a store is given.

    Registered under ``name`` (replacing any previous one) unless ``register_it=False``.
    """
    keys: dict[str, LocalMasterKey] = {}
    lock = threading.Lock()

    def master_key_for(tenant: str) -> MasterKey:
        with lock:
            return keys.setdefault(tenant, LocalMasterKey.generate())

    tenants = TenantKeyrings(
        name, key_store=key_store or MemoryKeyStore(), master_key_for=master_key_for, **options
    )
    if register_it:
        register(tenants, replace=True)
    return tenants


class CountingMasterKey:
    """Wraps any master key and counts its wrap/unwrap calls (the stand-in for KMS calls)."""

    def __init__(self, inner: MasterKey) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        with self._lock:
            self.calls["wrap"] += 1
        return self.inner.wrap(data_key, context)

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        with self._lock:
            self.calls["unwrap"] += 1
        return self.inner.unwrap(wrapped, context)

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return self.inner.can_unwrap(recorded_key_id)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def __repr__(self) -> str:
        return f"CountingMasterKey({self.inner!r}, calls={dict(self.calls)})"


class KmsCallCounter:
    """Counts the KMS requests a boto3 client sends (every attempt, retries included).

    ``counter = KmsCallCounter(); counter.attach(client)``; then ``counter.total`` and
    ``counter.calls["Decrypt"]``. Uses botocore's documented event system (``before-send``).
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.regions: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        region = client.meta.region_name

        def count(request: Any, **_: Any) -> None:
            target = request.headers.get("X-Amz-Target", b"")
            operation = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
            with self._lock:
                self.calls[operation] += 1
                self.regions[region] += 1

        client.meta.events.register("before-send.kms", count)
        return client

    @property
    def total(self) -> int:
        return sum(self.calls.values())
