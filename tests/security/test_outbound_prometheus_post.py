"""L5: a range query with long parameters (a 100 KB variable value) goes to Prometheus as a
form-encoded POST, not in a GET URL; short ones stay GETs."""

from __future__ import annotations

import aiohttp
import numpy as np

from analyzer.metricdata import FloatArray, MetricKind
from analyzer.sources.prometheus import POST_OVER_BYTES, PrometheusSource
from analyzer.sources.protocol import MetricQuery
from support.prometheus import FakePrometheus, fetch_request

PATHS = 'sum(http_requests_total{${selector},path=~"${paths}"})'
METRIC = MetricQuery(name="by_path", kind=MetricKind.SERIES, templates={"query": PATHS})


def ones(_query: str, times: FloatArray) -> FloatArray:
    """One at every step."""
    return np.ones(times.size)


class TestLongQueries:
    """How range queries are sent, by their length."""

    async def test_long_variable_goes_by_post(self, session: aiohttp.ClientSession) -> None:
        """A 100 KB variable value is sent in a form body, whole, and its answer is used."""
        value = "/p" * 50_000
        async with FakePrometheus(ones) as prometheus:
            source = PrometheusSource(prometheus.url, session, timeout_s=5.0)
            window = await source.fetch(fetch_request(METRIC, steps=3, paths=value))
        assert prometheus.methods == ["POST", "POST"]
        assert all(value in query for query in prometheus.queries)
        data = window.metrics["by_path"]
        assert data.error == ""
        np.testing.assert_array_equal(data.canary.values, [1, 1, 1])

    async def test_short_query_stays_get(self, session: aiohttp.ClientSession) -> None:
        """A query well under the limit is a GET with URL parameters, as before."""
        async with FakePrometheus(ones) as prometheus:
            source = PrometheusSource(prometheus.url, session, timeout_s=5.0)
            await source.fetch(fetch_request(METRIC, steps=3, paths="/checkout"))
        assert prometheus.methods == ["GET", "GET"]
        assert POST_OVER_BYTES <= 8192  # below the URL limits of common proxies and servers
