"""The Prometheus source against a fake Prometheus on loopback: data on the grid, every outage
as an all-NaN metric with its reason, and a bounded number of queries in flight."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from analyzer.errors import InvalidInput, UnknownVariable
from analyzer.metricdata import MetricData, MetricKind
from analyzer.model import Side, Window
from analyzer.sources.prometheus import PrometheusSource
from analyzer.sources.protocol import FetchRequest, MetricQuery

T0 = 1_767_225_600.0
STEP = 60.0
NAN = float("nan")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ERRORS = MetricQuery(
    name="error_rate",
    kind=MetricKind.COUNT,
    templates={
        "events": 'sum(increase(http_requests_total{code=~"5..",${selector}}[${step}]))',
        "exposure": "sum(increase(http_requests_total{${selector}}[${step}]))",
    },
)
LATENCY = MetricQuery(
    name="latency_p99",
    kind=MetricKind.SERIES,
    templates={
        "query": "histogram_quantile(0.99, sum by (le) "
        "(rate(http_request_duration_seconds_bucket{${selector}}[${step}])))"
    },
)


def request(*metrics: MetricQuery, steps: int = 5, **variables: str) -> FetchRequest:
    return FetchRequest(
        canary_id="c-1",
        metrics=metrics or (ERRORS, LATENCY),
        baseline=Side(labels={"deployment": "checkout-baseline"}),
        canary=Side(labels={"deployment": "checkout-canary"}),
        start=T0,
        end=T0 + (steps - 1) * STEP,
        step_s=STEP,
        variables=dict(variables),
    )


def matrix(*series: list[tuple[float, str]]) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "values": values} for i, values in enumerate(series)]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def reply(payload: dict[str, Any], status: int = 200) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.json_response(payload, status=status)

    return handler


class FakePrometheus:
    """A Prometheus HTTP API on loopback that records the range queries it gets."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        app = web.Application()
        app.router.add_get("/api/v1/query_range", self._query_range)
        self.server = TestServer(app, host="127.0.0.1")

    async def _query_range(self, req: web.Request) -> web.StreamResponse:
        self.queries.append(dict(req.query))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.handler(req)
        finally:
            self.in_flight -= 1

    @property
    def url(self) -> str:
        return str(self.server.make_url(""))

    async def __aenter__(self) -> FakePrometheus:
        await self.server.start_server()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def fetch_from(
    handler: Handler, session: aiohttp.ClientSession, req: FetchRequest | None = None
) -> tuple[Window, FakePrometheus]:
    async with FakePrometheus(handler) as prom:
        source = PrometheusSource(prom.url, session, timeout_s=2.0)
        return await source.fetch(req or request()), prom


def assert_all_nan(data: MetricData, error: str) -> None:
    assert error in data.error
    for values in (*data.baseline.arrays, *data.canary.arrays):
        assert np.isnan(values).all()


class TestPrometheusSource:
    async def test_forget_keeps_nothing_to_drop(self, session: aiohttp.ClientSession) -> None:
        """Every fetch asks Prometheus afresh: after forget the same queries give the same data."""
        async with FakePrometheus(reply(matrix([(T0, "1"), (T0 + STEP, "2")]))) as prom:
            source = PrometheusSource(prom.url, session, timeout_s=2.0)
            before = await source.fetch(request(LATENCY, steps=2))
            source.forget("c-1")
            after = await source.fetch(request(LATENCY, steps=2))
        np.testing.assert_array_equal(after.metrics["latency_p99"].canary.values, [1, 2])
        np.testing.assert_array_equal(
            after.metrics["latency_p99"].baseline.values,
            before.metrics["latency_p99"].baseline.values,
        )
        assert len(prom.queries) == 4

    async def test_aligns_both_sides_with_missing_steps(
        self, session: aiohttp.ClientSession
    ) -> None:
        """Samples land on their steps (within half a step); absent steps are NaN."""

        async def handler(req: web.Request) -> web.Response:
            start, step = float(req.query["start"]), float(req.query["step"])
            base = 100.0 if 'deployment="checkout-canary"' in req.query["query"] else 0.0
            base += 10.0 if "code=~" in req.query["query"] else 0.0
            base += 1000.0 if "histogram_quantile" in req.query["query"] else 0.0
            points = [(start + k * step + 0.2, str(base + k)) for k in (0, 1, 3, 4)]
            points.append((start - step, "999"))  # before the window: ignored
            return web.json_response(matrix(points))

        window, prom = await fetch_from(handler, session)
        errors, latency = window.metrics["error_rate"], window.metrics["latency_p99"]
        assert errors.error == latency.error == ""
        np.testing.assert_array_equal(errors.baseline.events, [10, 11, NAN, 13, 14])
        np.testing.assert_array_equal(errors.baseline.exposure, [0, 1, NAN, 3, 4])
        np.testing.assert_array_equal(errors.canary.events, [110, 111, NAN, 113, 114])
        np.testing.assert_array_equal(errors.canary.exposure, [100, 101, NAN, 103, 104])
        np.testing.assert_array_equal(latency.baseline.values, [1000, 1001, NAN, 1003, 1004])
        np.testing.assert_array_equal(latency.canary.values, [1100, 1101, NAN, 1103, 1104])
        assert (window.start, window.end, window.step_s, window.steps) == (T0, T0 + 240, 60, 5)
        assert len(prom.queries) == 6

    async def test_sends_rendered_range_queries(self, session: aiohttp.ClientSession) -> None:
        """Each side's template goes out rendered with that side's labels over the window."""
        window, prom = await fetch_from(reply(matrix([(T0, "1")])), session, request(LATENCY))
        assert window.metrics["latency_p99"].error == ""
        sent = sorted(q["query"] for q in prom.queries)
        assert sent == [
            "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket"
            f'{{deployment="checkout-{side}"}}[60s])))'
            for side in ("baseline", "canary")
        ]
        for q in prom.queries:
            assert float(q["start"]) == T0
            assert float(q["end"]) == T0 + 240
            assert float(q["step"]) == STEP
            assert q["timeout"] == "2s"

    async def test_empty_result(self, session: aiohttp.ClientSession) -> None:
        """No series is an all-NaN metric with error 'empty result'."""
        window, _ = await fetch_from(reply(matrix()), session)
        assert_all_nan(window.metrics["error_rate"], "empty result")
        assert_all_nan(window.metrics["latency_p99"], "empty result")

    async def test_several_series(self, session: aiohttp.ClientSession) -> None:
        """More than one series asks for an aggregation."""
        payload = matrix([(T0, "1")], [(T0, "2")], [(T0, "3")])
        window, _ = await fetch_from(reply(payload), session, request(LATENCY))
        assert_all_nan(
            window.metrics["latency_p99"],
            "query returned 3 series with different labels; aggregate it (e.g. sum(...))",
        )

    async def test_nan_and_inf_samples(self, session: aiohttp.ClientSession) -> None:
        """NaN and ±Inf samples are missing steps; only when nothing is left is it an error."""
        mixed = [(T0, "NaN"), (T0 + 60, "+Inf"), (T0 + 120, "2.5"), (T0 + 180, "-Inf")]
        window, _ = await fetch_from(reply(matrix(mixed)), session, request(LATENCY))
        data = window.metrics["latency_p99"]
        assert data.error == ""
        np.testing.assert_array_equal(data.canary.values, [NAN, NAN, 2.5, NAN, NAN])

        bad = [(T0, "NaN"), (T0 + 60, "+Inf"), (T0 + 120, "-Inf")]
        window, _ = await fetch_from(reply(matrix(bad)), session, request(LATENCY))
        assert_all_nan(window.metrics["latency_p99"], "no usable samples: 3 were NaN or ±Inf")

    async def test_http_500_with_prometheus_error(self, session: aiohttp.ClientSession) -> None:
        """A 5xx says the status and Prometheus' own error."""
        body = {"status": "error", "errorType": "internal", "error": "out of memory"}
        window, _ = await fetch_from(reply(body, status=500), session)
        assert_all_nan(window.metrics["error_rate"], "HTTP 500: internal: out of memory")

    async def test_http_400_bad_query(self, session: aiohttp.ClientSession) -> None:
        """A 4xx (a query Prometheus refuses) says its error too."""
        body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
        window, _ = await fetch_from(reply(body, status=400), session)
        assert_all_nan(
            window.metrics["latency_p99"], 'HTTP 400: bad_data: parse error: unexpected "}"'
        )

    async def test_http_502_from_a_proxy(self, session: aiohttp.ClientSession) -> None:
        """A non-JSON error page is quoted, shortened."""

        async def handler(_: web.Request) -> web.Response:
            return web.Response(status=502, text="<html>Bad Gateway</html>" + "x" * 500)

        window, _ = await fetch_from(handler, session)
        assert_all_nan(window.metrics["error_rate"], "HTTP 502: '<html>Bad Gateway</html>xxx")
        assert len(window.metrics["error_rate"].error) < 600

    async def test_malformed_json(self, session: aiohttp.ClientSession) -> None:
        """A 200 that is not JSON is a payload error."""

        async def handler(_: web.Request) -> web.Response:
            return web.Response(
                text='{"status": "success", "data": ', content_type="application/json"
            )

        window, _ = await fetch_from(handler, session)
        assert_all_nan(window.metrics["latency_p99"], "malformed JSON in the response")

    async def test_status_error(self, session: aiohttp.ClientSession) -> None:
        """status 'error' in a 200 carries Prometheus' message."""
        body = {"status": "error", "errorType": "timeout", "error": "query timed out"}
        window, _ = await fetch_from(reply(body), session)
        assert_all_nan(window.metrics["error_rate"], "Prometheus error: timeout: query timed out")

    @pytest.mark.parametrize(
        ("data", "error"),
        [
            ({"resultType": "vector", "result": []}, "expected resultType 'matrix', got 'vector'"),
            ({"resultType": "matrix", "result": [{"values": [[T0, "1"]]}]}, "unexpected matrix"),
            (
                {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, 2]]}]},
                "unexpected matrix: 0.values.0.1: Input should be a valid string",
            ),
            (
                {"resultType": "matrix", "result": [{"metric": {}, "values": [[T0, "x"]]}]},
                "unexpected sample value",
            ),
        ],
    )
    async def test_unexpected_shapes(
        self, session: aiohttp.ClientSession, data: dict[str, Any], error: str
    ) -> None:
        """A result of the wrong type or with mistyped samples is a payload error."""
        window, _ = await fetch_from(reply({"status": "success", "data": data}), session)
        assert_all_nan(window.metrics["latency_p99"], error)

    async def test_extra_fields_allowed(self, session: aiohttp.ClientSession) -> None:
        """Fields Prometheus adds (warnings, infos, stats) do not break parsing."""
        payload = matrix([(T0, "4")]) | {"warnings": ["w"], "infos": ["i"]}
        payload["data"]["stats"] = {"timings": {}}
        window, _ = await fetch_from(reply(payload), session, request(LATENCY))
        assert window.metrics["latency_p99"].canary.values[0] == 4.0

    async def test_slow_prometheus_times_out(self, session: aiohttp.ClientSession) -> None:
        """A query slower than the timeout is a timeout, not a hang."""
        release = asyncio.Event()

        async def handler(_: web.Request) -> web.Response:
            await release.wait()
            return web.json_response(matrix())

        async with FakePrometheus(handler) as prom:
            source = PrometheusSource(prom.url, session, timeout_s=0.2)
            window = await source.fetch(request(LATENCY))
            release.set()
        assert_all_nan(window.metrics["latency_p99"], "timed out after 0.2s")

    async def test_connection_refused(self, session: aiohttp.ClientSession) -> None:
        """A port nobody listens on is a connection error."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        source = PrometheusSource(f"http://127.0.0.1:{port}", session, timeout_s=2.0)
        window = await source.fetch(request())
        assert_all_nan(window.metrics["error_rate"], "connection failed")
        assert f"127.0.0.1:{port}" in window.metrics["error_rate"].error

    async def test_one_failed_query_fails_its_metric_only(
        self, session: aiohttp.ClientSession
    ) -> None:
        """A failed query blanks its whole metric (both sides), naming the side and role;
        other metrics keep their data."""

        async def handler(req: web.Request) -> web.Response:
            query = req.query["query"]
            if "code=~" in query and "checkout-canary" in query:
                return web.json_response({"status": "error", "error": "boom"}, status=503)
            return web.json_response(matrix([(T0, "1")]))

        window, _ = await fetch_from(handler, session)
        assert_all_nan(window.metrics["error_rate"], "canary events: HTTP 503: boom")
        assert window.metrics["latency_p99"].error == ""
        assert window.metrics["latency_p99"].baseline.values[0] == 1.0

    async def test_concurrency_is_bounded(self, session: aiohttp.ClientSession) -> None:
        """No more than max_concurrency queries are in flight at once."""

        async def handler(_: web.Request) -> web.Response:
            await asyncio.sleep(0.02)
            return web.json_response(matrix([(T0, "1")]))

        metrics = tuple(
            MetricQuery(
                name=f"m{i}", kind=MetricKind.SERIES, templates={"query": f"m{i}{{${{selector}}}}"}
            )
            for i in range(6)
        )
        async with FakePrometheus(handler) as prom:
            source = PrometheusSource(prom.url, session, max_concurrency=2)
            window = await source.fetch(request(*metrics))
        assert all(not data.error for data in window.metrics.values())
        assert len(prom.queries) == 12
        assert prom.max_in_flight == 2

    async def test_template_problem_raises(self, session: aiohttp.ClientSession) -> None:
        """An unknown variable is a config error: it raises, and nothing is queried."""
        metric = MetricQuery(
            name="m", kind=MetricKind.SERIES, templates={"query": "x{team=${team}}"}
        )
        async with FakePrometheus(reply(matrix())) as prom:
            source = PrometheusSource(prom.url, session)
            with pytest.raises(UnknownVariable) as caught:
                await source.fetch(request(metric))
        assert caught.value.field == "metrics.m.query"
        assert prom.queries == []

    async def test_variables_and_missing_role(self, session: aiohttp.ClientSession) -> None:
        """Declared variables are filled; a count metric without both templates raises."""
        metric = MetricQuery(
            name="m", kind=MetricKind.SERIES, templates={"query": 'x{job="${job}"}'}
        )
        window, prom = await fetch_from(
            reply(matrix([(T0, "1")])), session, request(metric, job="api")
        )
        assert {q["query"] for q in prom.queries} == {'x{job="api"}'}
        assert window.metrics["m"].error == ""
        broken = MetricQuery(name="e", kind=MetricKind.COUNT, templates={"events": "x"})
        with pytest.raises(InvalidInput, match="events"):
            await PrometheusSource("http://127.0.0.1:1", session).fetch(request(broken))

    async def test_close_leaves_the_session_open(self, session: aiohttp.ClientSession) -> None:
        """close() does not close the caller's session."""
        source = PrometheusSource("http://127.0.0.1:9090/prom/", session)
        await source.close()
        assert not session.closed

    @pytest.mark.parametrize("url", ["127.0.0.1:9090", "ftp://x", "http://"])
    async def test_bad_base_url(self, session: aiohttp.ClientSession, url: str) -> None:
        """A base URL that is not http(s) with a host is refused up front."""
        with pytest.raises(InvalidInput) as caught:
            PrometheusSource(url, session)
        assert caught.value.field == "base_url"
