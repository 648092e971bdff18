"""The daemon's own Prometheus metrics (units in the names), on a registry of its own.

Label values that come from users (a config's metric names) are bounded: at most
``max_label_values`` distinct values per metric family, later ones counted under ``_other``,
and a value's series removed once no live canary uses it any more (:meth:`Telemetry.release`),
so registrations cannot grow ``/metrics`` without bound. A removed series that comes back
starts again from zero, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Telemetry"]

_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
OVERFLOW = "_other"
"""The label value of everything past the bound."""
_MAX_VALUE_CHARS = 128


class _CanaryLabels:
    """One user-valued label of a counter, bounded and released per canary."""

    def __init__(self, counter: Counter, limit: int) -> None:
        self._counter = counter
        self._limit = limit
        self._users: dict[str, set[str]] = {}
        self._values_of: defaultdict[str, set[str]] = defaultdict(set)

    def inc(self, canary_id: str, value: str) -> None:
        value = value[:_MAX_VALUE_CHARS]
        if value not in self._users and len(self._users) >= self._limit:
            value = OVERFLOW
        self._users.setdefault(value, set()).add(canary_id)
        self._values_of[canary_id].add(value)
        self._counter.labels(value).inc()

    def release(self, canary_id: str) -> None:
        for value in self._values_of.pop(canary_id, set()):
            users = self._users.get(value, set())
            users.discard(canary_id)
            if not users:
                self._users.pop(value, None)
                self._counter.remove(value)

    def __len__(self) -> int:
        return len(self._users)


class _PhaseCollector(Collector):
    """Canaries by phase, read from the scheduler's in-memory view at scrape time."""

    def __init__(self, phases: Callable[[], dict[str, int]]) -> None:
        self._phases = phases

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("canaryd_canaries", "Canaries by phase.", labels=["phase"])
        for phase, count in sorted(self._phases().items()):
            family.add_metric([phase], count)
        yield family


class Telemetry:
    """Counters and histograms the scheduler, sources and webhooks report to."""

    def __init__(self, *, max_label_values: int = 200) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ticks = Counter("canaryd_ticks", "Ticks by verdict.", ["verdict"], registry=r)
        self.tick_duration = Histogram(
            "canaryd_tick_duration_seconds", "Fetch-to-record time of a tick.", registry=r
        )
        self.tick_lag = Histogram(
            "canaryd_tick_lag_seconds",
            "How late a tick started after it was due.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.decisions = Counter("canaryd_decisions", "Decisions by kind.", ["action"], registry=r)
        self.deliveries = Counter(
            "canaryd_webhook_deliveries", "Delivery attempts by outcome.", ["outcome"], registry=r
        )
        self.source_errors = Counter(
            "canaryd_source_errors", "Metrics that came back without data.", ["metric"], registry=r
        )
        self._source_error_labels = _CanaryLabels(self.source_errors, max_label_values)

    def source_error(self, canary_id: str, metric: str) -> None:
        """A metric of ``canary_id`` came back without data (bounded by metric name)."""
        self._source_error_labels.inc(canary_id, metric)

    def release(self, canary_id: str) -> None:
        """The canary has finished: drop the label values only it used."""
        self._source_error_labels.release(canary_id)

    @property
    def label_values(self) -> int:
        """Distinct user-valued label values held now (bounded by ``max_label_values``)."""
        return len(self._source_error_labels)

    def watch_phases(self, phases: Callable[[], dict[str, int]]) -> None:
        """Report canaries by phase from ``phases()`` at every scrape."""
        self.registry.register(_PhaseCollector(phases))

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
