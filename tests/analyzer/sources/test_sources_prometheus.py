"""The Prometheus source against a fake Prometheus on loopback: data on the grid, the range
queries it sends, and a bounded number of queries in flight. (Outages:
``test_sources_prometheus_failures.py``.)"""

from __future__ import annotations

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from analyzer.errors import InvalidInput, UnknownVariable
from analyzer.metricdata import MetricKind
from analyzer.sources.prometheus import PrometheusSource
from analyzer.sources.protocol import MetricQuery
from support.fakes import T0
from support.prometheus import FakePrometheus, canned, fetch_from, fetch_request, matrix
from support.queries import LATENCY, NAN, STEP


class TestPrometheusSource:
    """What the source asks Prometheus, and how the answers land on the window's grid."""

    async def test_forget_keeps_nothing_to_drop(self, session: aiohttp.ClientSession) -> None:
        """Every fetch asks Prometheus afresh: after forget the same queries give the same data."""
        handler = canned(matrix([(T0, "1"), (T0 + STEP, "2")]))
        async with FakePrometheus(handler=handler) as prom:
            source = PrometheusSource(prom.url, session, timeout_s=2.0)
            before = await source.fetch(fetch_request(LATENCY, steps=2))
            source.forget("c-1")
            after = await source.fetch(fetch_request(LATENCY, steps=2))
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
        window, prom = await fetch_from(
            canned(matrix([(T0, "1")])), session, fetch_request(LATENCY)
        )
        assert window.metrics["latency_p99"].error == ""
        assert sorted(prom.queries) == [
            "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket"
            f'{{deployment="checkout-{side}"}}[60s])))'
            for side in ("baseline", "canary")
        ]
        for q in prom.requests:
            assert float(q["start"]) == T0
            assert float(q["end"]) == T0 + 240
            assert float(q["step"]) == STEP
            assert q["timeout"] == "2s"

    async def test_concurrency_is_bounded(self, session: aiohttp.ClientSession) -> None:
        """No more than max_concurrency queries are in flight at once."""
        prom = FakePrometheus()

        async def handler(_: web.Request) -> web.Response:
            # Held until another query is in flight too (or this is the last of the 12): a
            # bound of 2 then shows as exactly 2 at once, however the loop is scheduled.
            await prom.until(
                lambda: prom.in_flight >= 2 or len(prom.requests) == 12, "a second query"
            )
            return web.json_response(matrix([(T0, "1")]))

        prom.handler = handler
        metrics = tuple(
            MetricQuery(
                name=f"m{i}", kind=MetricKind.SERIES, templates={"query": f"m{i}{{${{selector}}}}"}
            )
            for i in range(6)
        )
        async with prom:
            source = PrometheusSource(prom.url, session, max_concurrency=2)
            window = await source.fetch(fetch_request(*metrics))
        assert all(not data.error for data in window.metrics.values())
        assert len(prom.queries) == 12
        assert prom.max_in_flight == 2

    async def test_template_problem_raises(self, session: aiohttp.ClientSession) -> None:
        """An unknown variable is a config error: it raises, and nothing is queried."""
        metric = MetricQuery(
            name="m", kind=MetricKind.SERIES, templates={"query": "x{team=${team}}"}
        )
        async with FakePrometheus(handler=canned(matrix())) as prom:
            source = PrometheusSource(prom.url, session)
            with pytest.raises(UnknownVariable) as caught:
                await source.fetch(fetch_request(metric))
        assert caught.value.field == "metrics.m.query"
        assert prom.queries == []

    async def test_variables_and_missing_role(self, session: aiohttp.ClientSession) -> None:
        """Declared variables are filled; a count metric without both templates raises."""
        metric = MetricQuery(
            name="m", kind=MetricKind.SERIES, templates={"query": 'x{job="${job}"}'}
        )
        window, prom = await fetch_from(
            canned(matrix([(T0, "1")])), session, fetch_request(metric, job="api")
        )
        assert set(prom.queries) == {'x{job="api"}'}
        assert window.metrics["m"].error == ""
        broken = MetricQuery(name="e", kind=MetricKind.COUNT, templates={"events": "x"})
        with pytest.raises(InvalidInput, match="events"):
            await PrometheusSource("http://127.0.0.1:1", session).fetch(fetch_request(broken))

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
