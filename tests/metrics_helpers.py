"""fieldcrypt's metrics as the OpenTelemetry SDK's in-memory reader collects them, as differences."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from fieldcrypt import metrics

Attributes = frozenset[tuple[str, object]]
Points = dict[str, dict[Attributes, float]]


def attrs(**pairs: object) -> Attributes:
    return frozenset(pairs.items())


class Recorder:
    """An SDK meter provider with an in-memory reader, given to ``fieldcrypt.metrics.configure``."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.units: dict[str, str] = {}

    def collect(self) -> Points:
        """Every fieldcrypt data point now: counters and gauges by value, histograms by count."""
        points: Points = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                if scope.scope.name != metrics.METER_NAME:
                    continue
                for metric in scope.metrics:
                    self.units[metric.name] = metric.unit or ""
                    for point in metric.data.data_points:
                        value = point.count if hasattr(point, "count") else point.value
                        points.setdefault(metric.name, {})[frozenset(point.attributes.items())] = value
        return points

    def delta(self, before: Points) -> Points:
        """What changed since ``before`` (zero changes left out)."""
        out: Points = {}
        for name, now in self.collect().items():
            for key, value in now.items():
                change = value - before.get(name, {}).get(key, 0)
                if change:
                    out.setdefault(name, {})[key] = change
        return out


@contextmanager
def recording() -> Iterator[Recorder]:
    recorder = Recorder()
    metrics.configure(recorder.provider)
    try:
        yield recorder
    finally:
        metrics.configure(None)
        recorder.provider.shutdown()
