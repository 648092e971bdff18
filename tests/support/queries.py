"""The metric queries the source tests fetch, written once: the shapes both the Prometheus
source and the scrape source evaluate, on the 60 s step the tests' windows use."""

from __future__ import annotations

from analyzer.metricdata import MetricKind
from analyzer.sources.protocol import MetricQuery

__all__ = ["ERRORS", "LATENCY", "NAN", "RATE", "STEP", "TOTAL", "gauge", "latency"]

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


def latency(q: float, function: str = "rate", *, name: str = "") -> MetricQuery:
    """p``q`` of the latency histogram, by ``function`` (rate or increase) over a step; named
    ``name``, or ``latency_<function>_p<q>``."""
    return MetricQuery(
        name=name or f"latency_{function}_p{q:g}",
        kind=MetricKind.SERIES,
        templates={
            "query": f"histogram_quantile({q}, sum by (le) "
            f"({function}(http_request_duration_seconds_bucket{{${{selector}}}}[${{step}}])))"
        },
    )


LATENCY = latency(0.99, name="latency_p99")
"""p99 latency as the base judge config names it."""


def gauge(name: str, query: str) -> MetricQuery:
    """A series metric of one query."""
    return MetricQuery(name=name, kind=MetricKind.SERIES, templates={"query": query})
