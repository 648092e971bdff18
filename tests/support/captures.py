"""What the capture tests capture from: a judge config, and the golden samples of a checkout
service served by the tests' one fake Prometheus (:mod:`support.prometheus`) through
:func:`scripted`: one value per step from ``samples(query, t)``, a step left out where that is
None."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from support.prometheus import Handler, matrix

__all__ = [
    "BASELINE",
    "CANARY",
    "CONFIG",
    "START",
    "STEP",
    "T0",
    "Samples",
    "golden",
    "scripted",
]
START = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
T0 = START.timestamp()
STEP = 60.0
BASELINE = {"deployment": "checkout-baseline"}
CANARY = {"deployment": "checkout-canary"}
CONFIG: dict[str, Any] = {
    "name": "capture-test",
    "step": "60s",
    "analysis_interval": "5m",
    "variables": {"job": "http"},
    "metrics": [
        {
            "name": "error_rate",
            "kind": "count",
            "judge": "sequential-count",
            "critical": True,
            "tolerance": 1.2,
            "query": {
                "events": 'sum(increase(http_requests_total{job="${job}",code=~"5..",'
                "${selector}}[${step}]))",
                "exposure": 'sum(increase(http_requests_total{job="${job}",${selector}}[${step}]))',
            },
        },
        {
            "name": "latency_p99",
            "kind": "series",
            "judge": "mann-whitney",
            "query": "histogram_quantile(0.99, sum by (le) (rate("
            'http_request_duration_seconds_bucket{job="${job}",${selector}}[${step}])))',
        },
    ],
}

Samples = Callable[[str, float], str | None]


def golden(query: str, t: float) -> str | None:
    """Baseline 2 errors of 1000 requests per step, canary 5; p99 0.25 s and 0.30 s. The
    canary's p99 is missing at step 2 and NaN at step 3."""
    canary = 'deployment="checkout-canary"' in query
    k = round((t - T0) / STEP)
    if "histogram_quantile" in query:
        if canary and k == 2:
            return None
        return "NaN" if canary and k == 3 else ("0.3" if canary else "0.25")
    if "code=~" in query:
        return "5" if canary else "2"
    return "1000"


def scripted(samples: Samples) -> Handler:
    """A :class:`~support.prometheus.FakePrometheus` handler answering each range query with
    one series of ``samples(query, t)`` at each step time (a step is left out where that is
    None; no series at all when every step is)."""

    async def handler(request: web.Request) -> web.Response:
        start, end = float(request.query["start"]), float(request.query["end"])
        step = float(request.query["step"])
        query = request.query["query"]
        values = []
        for k in range(math.floor((end - start) / step) + 1):
            value = samples(query, start + k * step)
            if value is not None:
                values.append((start + k * step, value))
        return web.json_response(matrix(values) if values else matrix())

    return handler
