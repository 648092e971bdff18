"""The daemon's own Prometheus metrics (units in the names), on a registry of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Telemetry"]

_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


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

    def __init__(self) -> None:
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

    def watch_phases(self, phases: Callable[[], dict[str, int]]) -> None:
        """Report canaries by phase from ``phases()`` at every scrape."""
        self.registry.register(_PhaseCollector(phases))

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
