"""OpenTelemetry metrics (fieldcrypt.metrics), read with the SDK's in-memory reader after real work."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

import fieldcrypt
from fieldcrypt import DecryptionError, KeyAccessError, metrics
from fieldcrypt.cache import CacheEntry, DataKeyCache
from fieldcrypt.errors import KeyDestroyedError, NotCiphertextError
from metrics_helpers import Recorder, attrs

SSN = b"123-45-6789"
PLACE = fieldcrypt.Place("users", "ssn", "7")


def _keyring(cache: DataKeyCache | None = None) -> fieldcrypt.Keyring:
    # A name of its own: value counts are per keyring name and process.
    name = f"m{uuid.uuid4().hex[:12]}"
    return fieldcrypt.Keyring(
        name, fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore(), cache=cache
    )


def test_values_encrypted_and_decrypted_are_counted_per_keyring(recorder: Recorder) -> None:
    """Three values encrypted and two decrypted show as 3 and 2 under the keyring's name; another keyring's apart."""
    pii, other = _keyring(), _keyring()
    before = recorder.collect()
    blobs = [pii.encrypt(SSN, PLACE) for _ in range(3)]
    assert all(SSN not in blob for blob in blobs)  # stored as ciphertext
    assert [pii.decrypt(blob, PLACE) for blob in blobs[:2]] == [SSN, SSN]
    other.decrypt(other.encrypt(SSN, PLACE), PLACE)
    changed = recorder.delta(before)
    assert changed["fieldcrypt.values.encrypted"] == {
        attrs(keyring=pii.name): 3,
        attrs(keyring=other.name): 1,
    }
    assert changed["fieldcrypt.values.decrypted"] == {
        attrs(keyring=pii.name): 2,
        attrs(keyring=other.name): 1,
    }
    assert recorder.units["fieldcrypt.values.encrypted"] == "{value}"


def test_tenants_keyrings_count_under_their_family_name_never_the_tenant(recorder: Recorder) -> None:
    """Two tenants' keyrings of one family count together under the family's name; no tenant id appears."""
    family = f"m{uuid.uuid4().hex[:12]}"
    tenants = fieldcrypt.TenantKeyrings(
        family, key_store=fieldcrypt.MemoryKeyStore(), master_key_for=lambda tenant: master
    )
    master = fieldcrypt.LocalMasterKey.generate()
    before = recorder.collect()
    for tenant in ("acme-4711", "globex-4712"):
        keyring = tenants.keyring_for(tenant)
        assert keyring.decrypt(keyring.encrypt(SSN, PLACE), PLACE) == SSN
    changed = recorder.delta(before)
    assert changed["fieldcrypt.values.encrypted"] == {attrs(keyring=family): 2}
    assert changed["fieldcrypt.values.decrypted"] == {attrs(keyring=family): 2}
    assert "4711" not in repr(recorder.collect())
    assert "4712" not in repr(recorder.collect())


def test_a_tampered_value_is_counted_as_a_failure_by_kind(recorder: Recorder) -> None:
    """A flipped bit counts as kind "invalid", plaintext as "not_ciphertext", a destroyed key as "key_destroyed"; none as decrypted."""
    keyring = _keyring()
    blob = bytearray(keyring.encrypt(SSN, PLACE))
    blob[-1] ^= 1
    under_destroyed = keyring.encrypt(SSN, PLACE)  # written before its key is destroyed below
    before = recorder.collect()
    with pytest.raises(DecryptionError):
        keyring.decrypt(bytes(blob), PLACE)
    with pytest.raises(NotCiphertextError):
        keyring.decrypt(b"123-45-6789 in clear", PLACE)
    record = keyring.records()[-1]
    keyring.key_store.update(record.evolve(status=fieldcrypt.Status.DESTROYED, wraps={}))
    keyring.forget(record)
    with pytest.raises(KeyDestroyedError):
        keyring.decrypt(under_destroyed, PLACE)
    changed = recorder.delta(before)
    assert changed["fieldcrypt.decryption.failures"] == {
        attrs(keyring=keyring.name, kind="invalid"): 1,
        attrs(keyring=keyring.name, kind="not_ciphertext"): 1,
        attrs(keyring=keyring.name, kind="key_destroyed"): 1,
    }
    assert "fieldcrypt.values.decrypted" not in changed


def test_cache_hits_misses_and_evictions_by_reason(recorder: Recorder) -> None:
    """Loads are misses, later uses hits; LRU, age, use-count and forget evictions are told apart."""
    now = [0.0]
    cache = DataKeyCache(max_entries=2, max_uses=3, max_age=timedelta(seconds=10), clock=lambda: now[0])
    before = recorder.collect()
    assert cache.get("a", lambda: "A") == "A"  # miss
    assert [cache.get("a", lambda: "?") for _ in range(2)] == ["A", "A"]  # 2 hits
    assert cache.fresh("a") is None  # a 4th use is past max_uses=3: refused...
    assert cache.get("a", lambda: "A2") == "A2"  # ...and the next lookup loads again (used_up)
    cache.get("b", lambda: "B")
    cache.get("c", lambda: "C")  # 3 keys > max_entries=2: the least recently loaded goes (capacity)
    now[0] = 11.0
    cache.get("c", lambda: "C2")  # expired
    cache.evict("b")  # forgotten (a destroyed key)
    changed = recorder.delta(before)
    assert changed["fieldcrypt.cache.misses"] == {attrs(): 5}
    assert changed["fieldcrypt.cache.hits"] == {attrs(): 2}
    assert changed["fieldcrypt.cache.evictions"] == {
        attrs(reason="used_up"): 1,
        attrs(reason="capacity"): 1,
        attrs(reason="expired"): 1,
        attrs(reason="forgotten"): 1,
    }
    assert cache.counts().keys == 1
    assert recorder.units["fieldcrypt.cache.hits"] == "{lookup}"


def test_cache_hits_of_a_keyring_cost_nothing_per_value_and_survive_the_cache(recorder: Recorder) -> None:
    """Each value decrypted under a cached key is a hit, read from the entries' own use counts; a collected cache's counts stay."""
    keyring = _keyring()
    blob = keyring.encrypt(SSN, PLACE)
    before = recorder.collect()
    for _ in range(5):
        keyring.decrypt(blob, PLACE)
    assert recorder.delta(before)["fieldcrypt.cache.hits"] == {attrs(): 5}
    before = recorder.collect()
    del keyring
    import gc

    gc.collect()
    assert "fieldcrypt.cache.hits" not in recorder.delta(before)  # a process total never goes down


def test_hits_of_evicted_and_cleared_keys_stay_counted() -> None:
    """A key forgotten, cleared or pushed out keeps the hits it served in the cache's count (they never go down)."""
    cache = DataKeyCache(max_entries=1)
    for key in ("a", "b"):
        for _ in range(4):
            cache.get(key, lambda k=key: k.upper())  # 1 miss, 3 hits; "b" pushes "a" out
    assert (cache.counts().hits, cache.counts().misses) == (6, 2)
    cache.evict("b")
    cache.get("c", lambda: "C")
    cache.get("c", lambda: "C")
    cache.clear()
    counts = cache.counts()
    assert (counts.hits, counts.misses, counts.keys) == (7, 3, 0)
    assert counts.evictions == {"capacity": 1, "forgotten": 1, "cleared": 1}


def test_reading_an_entrys_hits_does_not_use_it() -> None:
    """CacheEntry.hits() reads itertools.count's repr: reading a hundred times leaves the use budget untouched."""
    entry = CacheEntry("key", expires_at=10.0, max_uses=3, clock=lambda: 0.0)
    assert entry.use()  # the load
    assert [entry.hits() for _ in range(100)] == [0] * 100
    assert entry.use()
    assert entry.use()
    assert entry.hits() == 2
    assert not entry.use()  # the budget of 3 is spent: reading took nothing from it
    assert entry.hits() == 2  # refused uses are not hits


def test_ticker_counts_every_tick_from_many_threads() -> None:
    """8 threads ticking 20,000 times each, read meanwhile: the final reading is exactly 160,000."""
    ticker = metrics.Ticker()

    def work() -> None:
        for _ in range(20_000):
            ticker.tick()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    readings = [ticker.value() for _ in range(50)]
    for thread in threads:
        thread.join()
    assert readings == sorted(readings)
    assert ticker.value() == ticker.value() == 160_000


def test_kms_requests_by_operation_and_outcome_against_moto(
    recorder: Recorder, kms_key: str, moto_endpoint: str
) -> None:
    """Encrypt (new key) and Decrypt (a fresh process's unwrap) count as ok with a duration; a wrong key's refusal counts under its error code."""
    store = fieldcrypt.MemoryKeyStore()
    master = fieldcrypt.KmsMasterKey(kms_key, endpoint_url=moto_endpoint)
    before = recorder.collect()
    writer = fieldcrypt.Keyring("pii", master, store)
    blob = writer.encrypt(SSN, PLACE)
    reader = fieldcrypt.Keyring("pii", master, store)  # its own cache: must unwrap through KMS
    assert reader.decrypt(blob, PLACE) == SSN
    missing = kms_key.rsplit("/", 1)[0] + f"/{uuid.uuid4()}"
    with pytest.raises(KeyAccessError):
        fieldcrypt.KmsMasterKey(missing, endpoint_url=moto_endpoint).wrap(b"k" * 32, {"a": "b"})
    changed = recorder.delta(before)
    requests = changed["fieldcrypt.kms.requests"]
    assert requests[attrs(operation="Encrypt", outcome="ok")] >= 1  # the anchor and the data key
    assert requests[attrs(operation="Decrypt", outcome="ok")] >= 1
    assert requests[attrs(operation="Encrypt", outcome="NotFoundException")] == 1
    assert changed["fieldcrypt.kms.duration"] == requests  # one timing per request, same attributes
    assert recorder.units["fieldcrypt.kms.duration"] == "s"


def test_no_keys_values_or_subject_ids_in_metric_attributes(
    recorder: Recorder, kms_key: str, moto_endpoint: str
) -> None:
    """After encrypting, decrypting, failing and KMS calls, attributes hold only names: no value, key, key id, ARN or row id."""
    keyring = fieldcrypt.Keyring(
        "pii", fieldcrypt.KmsMasterKey(kms_key, endpoint_url=moto_endpoint), fieldcrypt.MemoryKeyStore()
    )
    place = fieldcrypt.Place("patients", "ssn", "subject-4711")
    blob = keyring.encrypt(SSN, place)
    keyring.decrypt(blob, place)
    with pytest.raises(DecryptionError):
        keyring.decrypt(blob, fieldcrypt.Place("patients", "ssn", "subject-4712"))
    metrics.rows("reencrypt", "patients", "ssn", processed=1, failed=0)
    metrics.blind_index_dropped("patients", "ssn")
    secrets = [SSN.decode(), "4711", "4712", kms_key, kms_key.rsplit("/", 1)[1], blob.hex()]
    secrets += [r.key_id for r in keyring.records()]
    allowed = {"keyring", "kind", "operation", "outcome", "reason", "table", "column"}
    seen = recorder.collect()
    assert {"fieldcrypt.kms.requests", "fieldcrypt.decryption.failures", "fieldcrypt.rotation.rows"} <= set(
        seen
    )
    for name, points in seen.items():
        for attributes in points:
            assert {key for key, _ in attributes} <= allowed, name
            for _, value in attributes:
                assert not any(secret in str(value) or str(value) in secret for secret in secrets if value), (
                    name,
                    value,
                )


# A fresh interpreter in which ``import opentelemetry`` fails, as when the otel extra is absent.
BLOCK_OPENTELEMETRY = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"{name} is blocked for this test")
        return None

sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_core_imports_and_works_without_opentelemetry() -> None:
    """With opentelemetry unimportable: fieldcrypt imports, values round-trip unwrapped, hooks are no-ops, configure() says to install the extra."""
    done = _run(
        BLOCK_OPENTELEMETRY
        + """
import fieldcrypt
from fieldcrypt import metrics
from fieldcrypt.errors import ConfigurationError
k = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
p = fieldcrypt.Place("users", "ssn")
blob = k.encrypt(b"123-45-6789", p)
assert b"123-45-6789" not in blob and k.decrypt(blob, p) == b"123-45-6789"
assert "encrypt" not in vars(k) and "decrypt" not in vars(k), "wrapped without opentelemetry"
metrics.kms_request("Decrypt", "ok", 0.01)
metrics.rows("reencrypt", "users", "ssn", processed=3, failed=1)
metrics.blind_index_dropped("users", "ssn")
assert metrics._otel() is None and metrics._get() is None
assert not any(m.startswith("opentelemetry") for m in sys.modules)
try:
    metrics.configure()
except ConfigurationError as exc:
    assert "pip install 'fieldcrypt[otel]'" in str(exc)
else:
    raise AssertionError("configure() without the extra")
print("ok")
"""
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


def test_keyrings_are_counted_only_once_something_records() -> None:
    """API without an SDK: keyrings stay unwrapped; under an SDK provider set later, earlier keyrings are wrapped at its first collection, new ones at once."""
    done = _run(
        """
import fieldcrypt
from opentelemetry import metrics as api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

def keyring(name):
    return fieldcrypt.Keyring(name, fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())

p = fieldcrypt.Place("users", "ssn")
early = keyring("early")
early.encrypt(b"x", p)
assert "encrypt" not in vars(early), "wrapped while nothing records"
reader = InMemoryMetricReader()
api.set_meter_provider(MeterProvider(metric_readers=[reader]))
assert "encrypt" not in vars(early)
reader.get_metrics_data()
assert "encrypt" in vars(early), "not wrapped at the first collection"
late = keyring("late")
assert "encrypt" in vars(late), "not wrapped under an SDK provider"
early.encrypt(b"x", p); early.encrypt(b"y", p); late.encrypt(b"z", p)
counts = {
    point.attributes["keyring"]: point.value
    for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    if m.name == "fieldcrypt.values.encrypted" for point in m.data.data_points
}
assert counts == {"early": 2, "late": 1}, counts
print("ok")
"""
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


def test_failure_kinds_name_every_decryption_error() -> None:
    """Each DecryptionError subclass in fieldcrypt.errors has a kind of its own, and KeyAccessError is key_access."""
    from fieldcrypt import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, DecryptionError)]
    kinds = {metrics.failure_kind(_bare(c)) for c in classes}
    assert len(kinds) == len(classes)
    assert metrics.failure_kind(KeyAccessError("denied")) == "key_access"


def _bare(cls: type[Exception]) -> Any:
    return cls.__new__(cls)
