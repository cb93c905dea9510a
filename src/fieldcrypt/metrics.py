"""OpenTelemetry metrics (the ``otel`` extra): KMS calls, data-key caches, values, failures, searches,
rotation progress. docs/production.md ("Metrics") lists every instrument, unit and attribute.

Instruments come from the global meter provider (``opentelemetry.metrics``), or from the one
given to :func:`configure`. Attributes are names only (keyring, table, column, operation,
outcome): never a key, a key id, a value or a row's key, so a metrics backend learns nothing a
schema does not say.

What it costs per value, because encrypt and decrypt run millions of times:

* without the extra, nothing: opentelemetry is looked up once (when the first keyring is made
  or the first KMS call returns) and every hook then returns at once;
* with the API but no SDK (nothing records), nothing either: keyrings are left as they are;
* once a provider records (an SDK provider set globally or passed to :func:`configure`, or the
  first collection of these instruments), each keyring's ``encrypt`` and ``decrypt`` are wrapped
  to tick an ``itertools.count`` per value; observable counters read the counts when the reader
  collects, so no instrument is called per value. Cache hits cost nothing at all: they are read
  from the use counters the cache entries keep anyway (fieldcrypt.cache).

bench/bench_metrics.py measures the three cases against raw AES-GCM (docs/performance.md).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fieldcrypt import cache
from fieldcrypt.errors import (
    DamagedCiphertext,
    DecryptionError,
    KeyAccessError,
    KeyDestroyedError,
    MalformedCiphertext,
    NotCiphertextError,
    UnknownKeyError,
    UnsupportedFormatError,
    ValueTypeError,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, MeterProvider, Observation

METER_NAME = "fieldcrypt"
# Kinds of decryption failure, most specific first (``fieldcrypt.decryption.failures``).
FAILURE_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (KeyDestroyedError, "key_destroyed"),
    (UnknownKeyError, "unknown_key"),
    (NotCiphertextError, "not_ciphertext"),
    (UnsupportedFormatError, "unsupported_format"),
    (MalformedCiphertext, "malformed"),
    (DamagedCiphertext, "damaged"),
    (ValueTypeError, "value_type"),
    (DecryptionError, "invalid"),  # the opaque one: tampered, moved, or under a key that does not open it
    (KeyAccessError, "key_access"),  # KMS refused or did not answer (also in fieldcrypt.kms.requests)
)


class Ticker:
    """A thread-safe count ticked per value (``tick``: ``itertools.count.__next__``, atomic under
    the GIL) and read now and then without a lock on the ticking side."""

    __slots__ = ("_count", "_lock", "_reads", "tick")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.tick = self._count.__next__
        self._reads = 0
        self._lock = threading.Lock()

    def value(self) -> int:
        # Reading advances the count too: subtract the reads made so far.
        with self._lock:
            seen = next(self._count) - self._reads
            self._reads += 1
        return seen


@dataclass(frozen=True)
class _Tally:
    """Values one keyring name encrypted and decrypted in this process (all its instances)."""

    encrypted: Ticker
    decrypted: Ticker


@dataclass(frozen=True)
class _Instruments:
    kms_requests: Counter
    kms_duration: Histogram
    failures: Counter
    dropped: Counter
    rotation_rows: Counter
    observable: tuple[object, ...]  # kept referenced: the provider calls their callbacks


_lock = threading.RLock()
_api: ModuleType | None = None
_looked_up = False
_provider: MeterProvider | None = None  # configure()'s; None: the global one
_instruments: _Instruments | None = None
_recording = False
_tallies: dict[str, _Tally] = {}
_keyrings: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()  # -> its metric name
_counted: weakref.WeakSet[Any] = weakref.WeakSet()


def configure(meter_provider: MeterProvider | None = None) -> None:
    """Record fieldcrypt's metrics with ``meter_provider`` (None: the global provider again).

    Without a call, the global provider (``opentelemetry.metrics.set_meter_provider``) is used.
    Raises:
        ConfigurationError: the ``otel`` extra is not installed.
    """
    global _provider, _instruments, _recording
    if _otel() is None:
        from fieldcrypt.errors import ConfigurationError

        raise ConfigurationError("fieldcrypt metrics need the otel extra: pip install 'fieldcrypt[otel]'")
    with _lock:
        _provider = meter_provider
        _instruments = _build()
        _recording = False
        if meter_provider is not None or _something_records():
            _start_recording()


def count_values(keyring: Any, name: str) -> None:
    """Count ``keyring``'s values under ``name`` (``Keyring.__init__`` calls this): now if a
    provider records, else from the first collection; never without the extra."""
    if _otel() is None:
        return
    _get()  # observable instruments exist, so a provider set later collects (and starts counting)
    with _lock:
        _keyrings[keyring] = name
        if not _recording and _something_records():
            _start_recording()
        elif _recording:
            _wrap(keyring)


def kms_request(operation: str, outcome: str, seconds: float) -> None:
    """One KMS request (after botocore's retries): ``outcome`` is ``ok`` or the error code."""
    instruments = _get()
    if instruments is not None:
        attributes = {"operation": operation, "outcome": outcome}
        instruments.kms_requests.add(1, attributes)
        instruments.kms_duration.record(seconds, attributes)


def blind_index_dropped(table: str, column: str) -> None:
    """A blind-index match that did not decrypt to the searched value was dropped."""
    instruments = _get()
    if instruments is not None:
        instruments.dropped.add(1, {"table": table, "column": column})


def rows(operation: str, table: str, column: str, *, processed: int, failed: int) -> None:
    """A batch of a bulk operation (re-encryption, encryption, reindexing...) is done."""
    instruments = _get()
    if instruments is not None:
        where = {"operation": operation, "table": table, "column": column}
        instruments.rotation_rows.add(processed, {**where, "outcome": "processed"})
        if failed:
            instruments.rotation_rows.add(failed, {**where, "outcome": "failed"})


def failure_kind(error: BaseException) -> str:
    """The ``kind`` attribute of a decryption failure."""
    for cls, kind in FAILURE_KINDS:
        if isinstance(error, cls):
            return kind
    return "other"


# -- internals -----------------------------------------------------------------------------


def _otel() -> ModuleType | None:
    global _api, _looked_up
    if not _looked_up:
        with _lock:
            if not _looked_up:
                try:
                    import opentelemetry.metrics
                except ImportError:  # the extra is not installed: every hook returns at once
                    _api = None
                else:
                    _api = opentelemetry.metrics
                _looked_up = True
    return _api


def _get() -> _Instruments | None:
    instruments = _instruments
    if instruments is None and _otel() is not None:
        with _lock:
            if _instruments is None:
                _set_instruments(_build())
            instruments = _instruments
    return instruments


def _set_instruments(built: _Instruments) -> None:
    global _instruments
    _instruments = built


def _something_records() -> bool:
    """True when the global provider is not one of the API's own (the default proxy before an SDK
    is set, or NoOpMeterProvider), which record nothing."""
    api = _otel()
    if api is None:
        return False
    if _provider is not None:
        return True
    return not type(api.get_meter_provider()).__module__.startswith("opentelemetry.metrics")


def _start_recording() -> None:
    global _recording
    with _lock:
        _recording = True
        for keyring in list(_keyrings):
            _wrap(keyring)


def _wrap(keyring: Any) -> None:
    """Tick the keyring name's counts around its ``encrypt`` and ``decrypt`` (once)."""
    if keyring in _counted:
        return
    _counted.add(keyring)
    name = _keyrings[keyring]
    tally = _tallies.get(name)
    if tally is None:
        tally = _tallies[name] = _Tally(Ticker(), Ticker())
    encrypt, decrypt = keyring.encrypt, keyring.decrypt
    encrypted, decrypted = tally.encrypted.tick, tally.decrypted.tick

    def counted_encrypt(plaintext: bytes | str, place: Any) -> bytes:
        blob: bytes = encrypt(plaintext, place)
        encrypted()
        return blob

    def counted_decrypt(blob: bytes, place: Any) -> bytes:
        try:
            plaintext: bytes = decrypt(blob, place)
        except (DecryptionError, KeyAccessError) as exc:
            _failed(name, exc)
            raise
        decrypted()
        return plaintext

    # Instance attributes shadow the methods: keyrings made while nothing records keep the
    # class's methods untouched, so they pay nothing per value.
    keyring.encrypt, keyring.decrypt = counted_encrypt, counted_decrypt
    for callback in _on_counting:
        callback()  # per-column readers that open values themselves go back through decrypt


def when_counting(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever a keyring's values start being counted (its methods wrapped):
    code that resolved a keyring's keys to open values itself (:mod:`fieldcrypt.reading`) must
    resolve again, through the counting ``decrypt``."""
    _on_counting.append(callback)


_on_counting: list[Callable[[], None]] = []


def _failed(keyring: str, error: BaseException) -> None:
    instruments = _get()
    if instruments is not None:
        instruments.failures.add(1, {"keyring": keyring, "kind": failure_kind(error)})


def _build() -> _Instruments:
    api = _otel()
    assert api is not None
    try:
        version: str | None = metadata.version("fieldcrypt")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = None
    meter = (_provider or api.get_meter_provider()).get_meter(METER_NAME, version)
    observable = (
        meter.create_observable_counter(
            "fieldcrypt.values.encrypted", [_encrypted], unit="{value}", description="Values encrypted"
        ),
        meter.create_observable_counter(
            "fieldcrypt.values.decrypted", [_decrypted], unit="{value}", description="Values decrypted"
        ),
        meter.create_observable_counter(
            "fieldcrypt.cache.hits",
            [_cache_hits],
            unit="{lookup}",
            description="Data-key lookups answered from a cache (a value encrypted, decrypted or indexed)",
        ),
        meter.create_observable_counter(
            "fieldcrypt.cache.misses",
            [_cache_misses],
            unit="{lookup}",
            description="Data-key lookups that loaded the key (key store read and unwrap)",
        ),
        meter.create_observable_counter(
            "fieldcrypt.cache.evictions",
            [_cache_evictions],
            unit="{key}",
            description="Data keys removed from a cache, by reason",
        ),
        meter.create_observable_up_down_counter(
            "fieldcrypt.cache.keys", [_cache_keys], unit="{key}", description="Data keys held in caches"
        ),
    )
    return _Instruments(
        kms_requests=meter.create_counter(
            "fieldcrypt.kms.requests", unit="{request}", description="KMS requests, after retries"
        ),
        kms_duration=meter.create_histogram(
            "fieldcrypt.kms.duration", unit="s", description="Duration of KMS requests, retries included"
        ),
        failures=meter.create_counter(
            "fieldcrypt.decryption.failures", unit="{value}", description="Values that failed to decrypt"
        ),
        dropped=meter.create_counter(
            "fieldcrypt.blind_index.dropped",
            unit="{row}",
            description="Blind-index matches dropped: they did not decrypt to the searched value",
        ),
        rotation_rows=meter.create_counter(
            "fieldcrypt.rotation.rows", unit="{row}", description="Rows done by bulk operations"
        ),
        observable=observable,
    )


def _collecting() -> None:
    # A reader is collecting these instruments: something records, so count values from now on.
    if not _recording:
        _start_recording()


def _observe(pairs: Iterable[tuple[int, dict[str, str]]]) -> Iterator[Observation]:
    api = _otel()
    assert api is not None
    for value, attributes in pairs:
        yield api.Observation(value, attributes)


def _encrypted(options: CallbackOptions) -> Iterable[Observation]:
    _collecting()
    return _observe((t.encrypted.value(), {"keyring": n}) for n, t in list(_tallies.items()))


def _decrypted(options: CallbackOptions) -> Iterable[Observation]:
    _collecting()
    return _observe((t.decrypted.value(), {"keyring": n}) for n, t in list(_tallies.items()))


def _cache_hits(options: CallbackOptions) -> Iterable[Observation]:
    return _observe([(cache.process_totals().hits, {})])


def _cache_misses(options: CallbackOptions) -> Iterable[Observation]:
    return _observe([(cache.process_totals().misses, {})])


def _cache_evictions(options: CallbackOptions) -> Iterable[Observation]:
    evictions = cache.process_totals().evictions
    return _observe((count, {"reason": reason}) for reason, count in sorted(evictions.items()))


def _cache_keys(options: CallbackOptions) -> Iterable[Observation]:
    return _observe([(cache.process_totals().keys, {})])
