"""Live Prometheus exporters on loopback for the scrape source's tests, driven between fetches.

:class:`Exporter` serves pods' ``/metrics`` (a real ``prometheus_client`` registry each);
:class:`ScrapedCanary` fetches a growing (or sliding) window ending at the fake clock's now;
the queries they fetch are in :mod:`support.queries`.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from analyzer.clock import FakeClock
from analyzer.model import Side, Window
from analyzer.sources.protocol import FetchRequest, MetricQuery
from analyzer.sources.scrape import ScrapeSource
from support.loopback import server
from support.queries import STEP

__all__ = ["Exporter", "Pod", "ScrapedCanary", "serve"]


class Pod:
    """One process's metrics: a registry with a request counter, a latency histogram, gauges."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A fresh process: every counter starts again from zero."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "Requests.", ["code"], registry=self.registry
        )
        for code in ("200", "500"):
            self.requests.labels(code)
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Latency.",
            buckets=(0.1, 0.5, 1.0),
            registry=self.registry,
        )
        self.queue = Gauge("queue_depth", "Queued jobs.", ["worker"], registry=self.registry)
        self.info = Gauge("build_info", "Build.", ["deployment"], registry=self.registry)


class Exporter:
    """Pods' /metrics on loopback, at /<pod>/metrics; a pod in ``down`` answers 503, one in
    ``garbled`` a login page."""

    def __init__(self) -> None:
        self.pods: dict[str, Pod] = {}
        self.down: set[str] = set()
        self.garbled: set[str] = set()
        self.scrapes = 0
        app = web.Application()
        app.router.add_get("/{pod}/metrics", self._metrics)
        self.server = server(app)

    def pod(self, name: str) -> Pod:
        """The pod called ``name`` (made on first use)."""
        return self.pods.setdefault(name, Pod())

    def url(self, name: str) -> str:
        """The pod's scrape URL."""
        self.pod(name)
        return str(self.server.make_url(f"/{name}/metrics"))

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        name = request.match_info["pod"]
        if name in self.down:
            return web.Response(status=503, text="draining")
        if name in self.garbled:
            return web.Response(text="<html><body>login</body></html>\n", content_type="text/html")
        body = generate_latest(self.pods[name].registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class ScrapedCanary:
    """A canary under analysis: a growing (or sliding) window ending now."""

    def __init__(  # noqa: PLR0917 — the two sides' targets read best in place
        self,
        source: ScrapeSource,
        clock: FakeClock,
        baseline: tuple[str, ...],
        canary: tuple[str, ...],
        lookback_steps: int | None = None,
        canary_id: str = "c-1",
    ) -> None:
        self.source = source
        self.clock = clock
        self.start = clock.now()
        self.baseline = Side(labels={"deployment": "checkout-baseline"}, targets=baseline)
        self.canary = Side(labels={"deployment": "checkout-canary"}, targets=canary)
        self.lookback_steps = lookback_steps
        self.canary_id = canary_id

    async def fetch(self, *metrics: MetricQuery) -> Window:
        """Fetch ``metrics`` over the window ending now."""
        end = self.clock.now()
        start = self.start
        if self.lookback_steps is not None:
            start = max(start, end - (self.lookback_steps - 1) * STEP)
        request = FetchRequest(
            canary_id=self.canary_id,
            metrics=metrics,
            baseline=self.baseline,
            canary=self.canary,
            start=start,
            end=end,
            step_s=STEP,
        )
        return await self.source.fetch(request)


def serve(pod: Pod, ok: int, errors: int, durations: tuple[float, ...] = ()) -> None:
    """The pod answers ``ok`` requests, ``errors`` 5xx, and observes ``durations``."""
    pod.requests.labels("200").inc(ok)
    pod.requests.labels("500").inc(errors)
    for seconds in durations:
        pod.latency.observe(seconds)
