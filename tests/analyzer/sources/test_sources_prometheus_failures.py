"""The Prometheus source against a fake Prometheus on loopback that fails: every outage is an
all-NaN metric with its reason, and one failed query fails its own metric only."""

from __future__ import annotations

from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from analyzer.sources.prometheus import PrometheusSource
from support.fakes import T0
from support.prometheus import (
    FakePrometheus,
    Fault,
    assert_all_nan,
    canned,
    canned_text,
    fetch_from,
    fetch_request,
    matrix,
    prometheus_error,
)
from support.queries import LATENCY, NAN


class TestPrometheusFailures:
    """Each way a query can fail, and the reason its metric carries."""

    async def test_empty_result(self, session: aiohttp.ClientSession) -> None:
        """No series is an all-NaN metric with error 'empty result'."""
        window, _ = await fetch_from(canned(matrix()), session)
        assert_all_nan(window.metrics["error_rate"], "empty result")
        assert_all_nan(window.metrics["latency_p99"], "empty result")

    async def test_several_series(self, session: aiohttp.ClientSession) -> None:
        """More than one series asks for an aggregation."""
        payload = matrix([(T0, "1")], [(T0, "2")], [(T0, "3")])
        window, _ = await fetch_from(canned(payload), session, fetch_request(LATENCY))
        assert_all_nan(
            window.metrics["latency_p99"],
            "query returned 3 series with different labels; aggregate it (e.g. sum(...))",
        )

    async def test_nan_and_inf_samples(self, session: aiohttp.ClientSession) -> None:
        """NaN and ±Inf samples are missing steps; only when nothing is left is it an error."""
        mixed = [(T0, "NaN"), (T0 + 60, "+Inf"), (T0 + 120, "2.5"), (T0 + 180, "-Inf")]
        window, _ = await fetch_from(canned(matrix(mixed)), session, fetch_request(LATENCY))
        data = window.metrics["latency_p99"]
        assert data.error == ""
        np.testing.assert_array_equal(data.canary.values, [NAN, NAN, 2.5, NAN, NAN])

        bad = [(T0, "NaN"), (T0 + 60, "+Inf"), (T0 + 120, "-Inf")]
        window, _ = await fetch_from(canned(matrix(bad)), session, fetch_request(LATENCY))
        assert_all_nan(window.metrics["latency_p99"], "no usable samples: 3 were NaN or ±Inf")

    async def test_http_500_with_prometheus_error(self, session: aiohttp.ClientSession) -> None:
        """A 5xx says the status and Prometheus' own error."""
        body = prometheus_error("internal", "out of memory")
        window, _ = await fetch_from(canned(body, status=500), session)
        assert_all_nan(window.metrics["error_rate"], "HTTP 500: internal: out of memory")

    async def test_http_400_bad_query(self, session: aiohttp.ClientSession) -> None:
        """A 4xx (a query Prometheus refuses) says its error too."""
        body = prometheus_error("bad_data", 'parse error: unexpected "}"')
        window, _ = await fetch_from(canned(body, status=400), session)
        assert_all_nan(
            window.metrics["latency_p99"], 'HTTP 400: bad_data: parse error: unexpected "}"'
        )

    async def test_http_502_from_a_proxy(self, session: aiohttp.ClientSession) -> None:
        """A non-JSON error page is quoted, shortened."""
        page = canned_text("<html>Bad Gateway</html>" + "x" * 500, status=502)
        window, _ = await fetch_from(page, session)
        assert_all_nan(window.metrics["error_rate"], "HTTP 502: '<html>Bad Gateway</html>xxx")
        assert len(window.metrics["error_rate"].error) < 600

    async def test_malformed_json(self, session: aiohttp.ClientSession) -> None:
        """A 200 that is not JSON is a payload error."""
        cut = canned_text('{"status": "success", "data": ', content_type="application/json")
        window, _ = await fetch_from(cut, session)
        assert_all_nan(window.metrics["latency_p99"], "malformed JSON in the response")

    async def test_status_error(self, session: aiohttp.ClientSession) -> None:
        """status 'error' in a 200 carries Prometheus' message."""
        window, _ = await fetch_from(
            canned(prometheus_error("timeout", "query timed out")), session
        )
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
        window, _ = await fetch_from(canned({"status": "success", "data": data}), session)
        assert_all_nan(window.metrics["latency_p99"], error)

    async def test_extra_fields_allowed(self, session: aiohttp.ClientSession) -> None:
        """Fields Prometheus adds (warnings, infos, stats) do not break parsing."""
        payload = matrix([(T0, "4")]) | {"warnings": ["w"], "infos": ["i"]}
        payload["data"]["stats"] = {"timings": {}}
        window, _ = await fetch_from(canned(payload), session, fetch_request(LATENCY))
        assert window.metrics["latency_p99"].canary.values[0] == 4.0

    async def test_slow_prometheus_times_out(self, session: aiohttp.ClientSession) -> None:
        """A query slower than the timeout is a timeout, not a hang."""
        async with FakePrometheus() as prom:
            await prom.switch(Fault.SLOW)  # held until the fault changes or the fake closes
            source = PrometheusSource(prom.url, session, timeout_s=0.2)
            window = await source.fetch(fetch_request(LATENCY))
        assert_all_nan(window.metrics["latency_p99"], "timed out after 0.2s")

    async def test_connection_refused(
        self, session: aiohttp.ClientSession, refused_url: str
    ) -> None:
        """A port nobody listens on is a connection error."""
        source = PrometheusSource(refused_url, session, timeout_s=2.0)
        window = await source.fetch(fetch_request())
        assert_all_nan(window.metrics["error_rate"], "connection failed")
        assert refused_url.removeprefix("http://") in window.metrics["error_rate"].error

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
