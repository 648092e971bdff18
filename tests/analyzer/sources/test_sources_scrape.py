"""The scrape source against live exporters on loopback that the tests drive between fetches;
a fake clock stands in for time, so nothing sleeps."""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from analyzer.clock import FakeClock
from analyzer.errors import InvalidInput
from analyzer.metricdata import MetricKind, SideName
from analyzer.model import Side, Window
from analyzer.sources.promql.parse import SUPPORTED_SHAPES
from analyzer.sources.protocol import FetchRequest, MetricQuery
from analyzer.sources.scrape import ScrapeSource, check_supported
from analyzer.sources.timeline import bucket_quantile

STEP = 60.0
NAN = float("nan")

ERRORS = MetricQuery(
    name="error_rate",
    kind=MetricKind.COUNT,
    templates={
        "events": 'sum(increase(http_requests_total{code=~"5..",${selector}}[${step}]))',
        "exposure": "sum(increase(http_requests_total{${selector}}[${step}]))",
    },
)
RATE = MetricQuery(
    name="request_rate",
    kind=MetricKind.SERIES,
    templates={"query": "sum(rate(http_requests_total{${selector}}[${step}]))"},
)

TOTAL = MetricQuery(
    name="total",
    kind=MetricKind.SERIES,
    templates={"query": "sum(http_requests_total{${selector}})"},
)


def latency(q: float, function: str = "rate") -> MetricQuery:
    return MetricQuery(
        name=f"latency_{function}_p{q:g}",
        kind=MetricKind.SERIES,
        templates={
            "query": f"histogram_quantile({q}, sum by (le) "
            f"({function}(http_request_duration_seconds_bucket{{${{selector}}}}[${{step}}])))"
        },
    )


def gauge(name: str, query: str) -> MetricQuery:
    return MetricQuery(name=name, kind=MetricKind.SERIES, templates={"query": query})


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
        self.server = TestServer(app, host="127.0.0.1")

    def pod(self, name: str) -> Pod:
        return self.pods.setdefault(name, Pod())

    def url(self, name: str) -> str:
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


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def exporter() -> AsyncIterator[Exporter]:
    exporter = Exporter()
    await exporter.server.start_server()
    yield exporter
    await exporter.server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


class Canary:
    """A canary under analysis: a growing (or sliding) window ending now."""

    def __init__(
        self,
        source: ScrapeSource,
        clock: FakeClock,
        baseline: tuple[str, ...],
        canary: tuple[str, ...],
        lookback_steps: int | None = None,
    ) -> None:
        self.source = source
        self.clock = clock
        self.start = clock.now()
        self.baseline = Side(labels={"deployment": "checkout-baseline"}, targets=baseline)
        self.canary = Side(labels={"deployment": "checkout-canary"}, targets=canary)
        self.lookback_steps = lookback_steps

    async def fetch(self, *metrics: MetricQuery) -> Window:
        end = self.clock.now()
        start = self.start
        if self.lookback_steps is not None:
            start = max(start, end - (self.lookback_steps - 1) * STEP)
        request = FetchRequest(
            canary_id="c-1",
            metrics=metrics,
            baseline=self.baseline,
            canary=self.canary,
            start=start,
            end=end,
            step_s=STEP,
        )
        return await self.source.fetch(request)


@pytest.fixture
def canary(session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock) -> Canary:
    source = ScrapeSource(session, clock=clock, timeout_s=2.0)
    return Canary(source, clock, (exporter.url("baseline"),), (exporter.url("canary"),))


def serve(pod: Pod, ok: int, errors: int, durations: tuple[float, ...] = ()) -> None:
    pod.requests.labels("200").inc(ok)
    pod.requests.labels("500").inc(errors)
    for seconds in durations:
        pod.latency.observe(seconds)


class TestScrapeSource:
    async def test_increase_per_step(self, canary: Canary, exporter: Exporter) -> None:
        """Events and exposure are the counters' rises between consecutive scrapes."""
        window = await canary.fetch(ERRORS)
        assert "no scrape 60s before this step" in window.metrics["error_rate"].error

        serve(exporter.pod("baseline"), ok=90, errors=10)
        serve(exporter.pod("canary"), ok=80, errors=20)
        await canary.clock.advance(STEP)
        window = await canary.fetch(ERRORS)
        data = window.metrics["error_rate"]
        assert data.error == ""
        np.testing.assert_array_equal(data.baseline.events, [NAN, 10])
        np.testing.assert_array_equal(data.baseline.exposure, [NAN, 100])
        np.testing.assert_array_equal(data.canary.events, [NAN, 20])
        np.testing.assert_array_equal(data.canary.exposure, [NAN, 100])

        serve(exporter.pod("baseline"), ok=50, errors=0)
        serve(exporter.pod("canary"), ok=1, errors=2)
        await canary.clock.advance(STEP + 1.5)  # a late scrape still falls on its step
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        np.testing.assert_array_equal(data.baseline.events, [NAN, 10, 0])
        np.testing.assert_array_equal(data.baseline.exposure, [NAN, 100, 50])
        np.testing.assert_array_equal(data.canary.events, [NAN, 20, 2])
        np.testing.assert_array_equal(data.canary.exposure, [NAN, 100, 3])

    async def test_rate(self, canary: Canary, exporter: Exporter) -> None:
        """rate is the increase per second of the range."""
        await canary.fetch(RATE)
        serve(exporter.pod("baseline"), ok=100, errors=20)
        serve(exporter.pod("canary"), ok=30, errors=0)
        await canary.clock.advance(STEP)
        data = (await canary.fetch(RATE)).metrics["request_rate"]
        np.testing.assert_allclose(data.baseline.values, [NAN, 2.0])
        np.testing.assert_allclose(data.canary.values, [NAN, 0.5])

    async def test_counter_reset(self, canary: Canary, exporter: Exporter) -> None:
        """A counter that falls has restarted: the step's increase is its new value."""
        await canary.fetch(ERRORS)
        serve(exporter.pod("canary"), ok=95, errors=5)
        await canary.clock.advance(STEP)
        await canary.fetch(ERRORS)
        exporter.pod("canary").restart()
        serve(exporter.pod("canary"), ok=4, errors=3)
        await canary.clock.advance(STEP)
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        np.testing.assert_array_equal(data.canary.exposure, [NAN, 100, 7])
        np.testing.assert_array_equal(data.canary.events, [NAN, 5, 3])

    async def test_histogram_quantile(self, canary: Canary, exporter: Exporter) -> None:
        """Quantiles interpolate within the bucket of the step's observations; a rank in the
        +Inf bucket gives the highest finite bound."""
        metrics = (latency(0.5), latency(0.9), latency(0.9, "increase"))
        await canary.fetch(*metrics)
        serve(exporter.pod("baseline"), ok=0, errors=0, durations=(0.05,) * 5 + (0.3,) * 5)
        serve(exporter.pod("canary"), ok=0, errors=0, durations=(2.0,) * 10)
        await canary.clock.advance(STEP)
        window = await canary.fetch(*metrics)
        p50, p90 = window.metrics["latency_rate_p0.5"], window.metrics["latency_rate_p0.9"]
        # baseline buckets le=0.1: 5, 0.5: 10, 1: 10, +Inf: 10
        assert p50.baseline.values[1] == pytest.approx(0.1)  # rank 5: top of the first bucket
        assert p90.baseline.values[1] == pytest.approx(0.1 + 0.4 * (9 - 5) / 5)
        assert p90.canary.values[1] == 1.0
        assert p50.canary.values[1] == 1.0
        assert math.isnan(p90.baseline.values[0])
        by_increase = window.metrics["latency_increase_p0.9"]
        np.testing.assert_array_equal(by_increase.baseline.values, p90.baseline.values)

    async def test_gauges(self, canary: Canary, exporter: Exporter) -> None:
        """Gauges are read at the scrape, alone or summed, averaged, maxed, minned."""
        for pod, (a, b) in (("baseline", (3.0, 5.0)), ("canary", (10.0, 20.0))):
            exporter.pod(pod).queue.labels("a").set(a)
            exporter.pod(pod).queue.labels("b").set(b)
        metrics = [
            gauge(op, f"{op}(queue_depth{{${{selector}}}})") for op in ("sum", "avg", "max", "min")
        ]
        metrics.append(gauge("one", 'queue_depth{worker="a",${selector}}'))
        metrics.append(gauge("many", "queue_depth{${selector}}"))
        window = await canary.fetch(*metrics)
        got = {name: data.baseline.arrays[0] for name, data in window.metrics.items()}
        assert got["sum"][0] == 8.0
        assert got["avg"][0] == 4.0
        assert got["max"][0] == 5.0
        assert got["min"][0] == 3.0
        assert got["one"][0] == 3.0
        assert window.metrics["sum"].canary.values[0] == 30.0
        assert window.metrics["many"].error == (
            "baseline, canary: query returned 2 series with different labels; "
            "aggregate it (e.g. sum(...))"
        )

    async def test_side_labels_win(self, canary: Canary, exporter: Exporter) -> None:
        """The side's labels select its samples; a clashing scraped label becomes exported_*."""
        exporter.pod("baseline").info.labels("impostor").set(1)
        exporter.pod("canary").info.labels("impostor").set(1)
        metric = gauge("info", 'sum(build_info{exported_deployment="impostor",${selector}})')
        other = gauge("other", 'sum(build_info{deployment="impostor"})')
        window = await canary.fetch(metric, other)
        assert window.metrics["info"].baseline.values[0] == 1.0
        assert "empty result: no series of build_info matched" in window.metrics["other"].error

    async def test_targets_summed(
        self, session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock
    ) -> None:
        """Counters of every target of a side add up."""
        source = ScrapeSource(session, clock=clock)
        pods = (exporter.url("b1"), exporter.url("b2"))
        canary = Canary(source, clock, pods, (exporter.url("c1"),))
        await canary.fetch(ERRORS)
        serve(exporter.pod("b1"), ok=10, errors=1)
        serve(exporter.pod("b2"), ok=5, errors=2)
        await clock.advance(STEP)
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        np.testing.assert_array_equal(data.baseline.exposure, [NAN, 18])
        np.testing.assert_array_equal(data.baseline.events, [NAN, 3])

    async def test_target_down(
        self, session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock
    ) -> None:
        """A target that cannot be scraped leaves no data, and the error says which and why."""
        source = ScrapeSource(session, clock=clock)
        down = closed_port_url()
        canary = Canary(source, clock, (exporter.url("baseline"),), (down,))
        exporter.pod("baseline").queue.labels("a").set(1)
        await canary.fetch(ERRORS, gauge("q", "sum(queue_depth{${selector}})"))
        await clock.advance(STEP)
        window = await canary.fetch(ERRORS, gauge("q", "sum(queue_depth{${selector}})"))
        for data in window.metrics.values():
            assert f"scrape of {down} failed: connection failed" in data.error
            assert data.error.startswith("canary")
            assert all(np.isnan(values).all() for values in data.canary.arrays)

    async def test_not_exposition_text(self, canary: Canary, exporter: Exporter) -> None:
        """A target answering something other than exposition text is a failed scrape."""
        exporter.garbled = {"canary"}
        data = (await canary.fetch(TOTAL)).metrics["total"]
        assert "failed: not Prometheus exposition text" in data.error
        assert np.isnan(data.canary.values).all()

    async def test_failed_scrape_is_a_missing_step(
        self, canary: Canary, exporter: Exporter
    ) -> None:
        """A scrape that fails blanks the steps that need it; the others keep their values."""
        values = []
        for step in range(5):
            exporter.down = {"canary"} if step == 2 else set()
            serve(exporter.pod("canary"), ok=10 * step, errors=0)
            if step:
                await canary.clock.advance(STEP)
            window = await canary.fetch(ERRORS, TOTAL)
            values.append(window)
        data = values[-1].metrics["error_rate"]
        assert data.error == ""
        np.testing.assert_array_equal(data.canary.exposure, [NAN, 10, NAN, NAN, 40])
        sums = values[-1].metrics["total"].canary.values
        np.testing.assert_array_equal(sums, [0, 10, NAN, 60, 100])
        failed = values[2].metrics["total"]
        assert failed.error == ""  # steps 0 and 1 still have data
        np.testing.assert_array_equal(failed.canary.values, [0, 10, NAN])

    async def test_unsupported_shape(self, canary: Canary, exporter: Exporter) -> None:
        """A query the scrape source cannot evaluate raises naming the supported shapes,
        before anything is scraped."""
        metric = gauge("raw_rate", "rate(http_requests_total{${selector}}[${step}])")
        with pytest.raises(InvalidInput) as caught:
            await canary.fetch(metric)
        assert caught.value.field == "metrics.raw_rate.query"
        assert all(shape in caught.value.message for shape in SUPPORTED_SHAPES)
        assert exporter.scrapes == 0
        with pytest.raises(InvalidInput, match="supported shapes"):
            check_supported('topk(3, x{a="b"})')
        check_supported('sum(rate(x{a="b"}[1m]))')

    async def test_forget(self, canary: Canary, exporter: Exporter) -> None:
        """A forgotten canary starts again without history."""
        await canary.fetch(ERRORS)
        await canary.clock.advance(STEP)
        canary.source.forget("c-1")
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        assert np.isnan(data.canary.exposure).all()
        assert "no scrape 60s before this step" in data.error

    async def test_forget_drops_both_sides_of_that_canary_only(
        self, session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock
    ) -> None:
        """forget releases the canary's histories on both sides; other canaries keep theirs."""
        source = ScrapeSource(session, clock=clock)
        for canary_id in ("c-1", "c-2"):
            await source.fetch(
                FetchRequest(
                    canary_id=canary_id,
                    metrics=(ERRORS,),
                    baseline=Side(labels={"deployment": "b"}, targets=(exporter.url("b"),)),
                    canary=Side(labels={"deployment": "c"}, targets=(exporter.url("c"),)),
                    start=clock.now(),
                    end=clock.now(),
                    step_s=STEP,
                )
            )
        source.forget("c-1")
        assert sorted(source._history) == [("c-2", SideName.BASELINE), ("c-2", SideName.CANARY)]

    async def test_history_is_bounded(
        self, session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock
    ) -> None:
        """A sliding window keeps only the scrapes it can still use: its steps plus two."""
        source = ScrapeSource(session, clock=clock)
        canary = Canary(source, clock, (exporter.url("b"),), (exporter.url("c"),), lookback_steps=3)
        for step in range(10):
            serve(exporter.pod("c"), ok=step, errors=0)
            await canary.fetch(ERRORS)
            await clock.advance(STEP)
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        np.testing.assert_array_equal(data.canary.exposure, [8, 9, 0])
        assert len(source._history["c-1", "canary"]) == 3 + 2  # the bound, seen from inside

    async def test_no_targets(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        """A side without targets has no data, and says so."""
        canary = Canary(ScrapeSource(session, clock=clock), clock, (), ())
        data = (await canary.fetch(gauge("q", "sum(queue_depth{${selector}})"))).metrics["q"]
        assert data.error == "baseline, canary: the side has no scrape targets"


class TestBucketQuantile:
    INF = math.inf

    @pytest.mark.parametrize(
        ("q", "buckets", "expected"),
        [
            (0.5, [(0.1, 5), (0.5, 10), (1.0, 10), (INF, 10)], 0.1),
            (0.9, [(0.1, 5), (0.5, 10), (1.0, 10), (INF, 10)], 0.42),
            (0.25, [(1.0, 4), (2.0, 8), (INF, 8)], 0.5),
            (0.99, [(0.1, 0), (0.5, 0), (INF, 10)], 0.5),
            (0.5, [(-1.0, 6), (0.0, 8), (INF, 10)], -1.0),
            (0.5, [(0.1, 6), (0.5, 4), (INF, 10)], 0.1 * 5 / 6),
            (1.0, [(0.1, 5), (0.5, 10), (INF, 10)], 0.5),
        ],
    )
    def test_prometheus_rules(
        self, q: float, buckets: list[tuple[float, float]], expected: float
    ) -> None:
        """Linear interpolation, the +Inf rule, a lowest bound ≤ 0, monotonicity forced."""
        assert bucket_quantile(q, buckets) == pytest.approx(expected)

    @pytest.mark.parametrize(
        "buckets",
        [[(0.1, 1), (0.5, 2)], [(INF, 3)], [(0.1, 0), (INF, 0)], []],
    )
    def test_nan(self, buckets: list[tuple[float, float]]) -> None:
        """No +Inf bucket, a single bucket, or no observations: NaN."""
        assert math.isnan(bucket_quantile(0.5, buckets))
