"""What the capture tests capture from: a judge config, the golden samples of a checkout service,
and a scripted fake Prometheus serving them on 127.0.0.1.

:class:`ScriptedPrometheus` records every request it gets (path and parameters) and answers the
range-query endpoint one value per step from ``samples(query, t)`` (a step is left out when that
is None); a test may swap ``samples`` or set ``reply`` to answer every request itself.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from support.loopback import serving

__all__ = [
    "BASELINE",
    "CANARY",
    "CONFIG",
    "START",
    "STEP",
    "T0",
    "Samples",
    "ScriptedPrometheus",
    "golden",
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


class ScriptedPrometheus:
    """Prometheus' range-query API on 127.0.0.1, recording every request it gets."""

    def __init__(self, samples: Samples = golden) -> None:
        self.samples = samples
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.reply: Callable[[web.Request], web.Response] | None = None
        self.url = ""
        """The base URL, once serving."""

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[ScriptedPrometheus]:
        """Listening on 127.0.0.1 (any path) until the block ends."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        async with serving(app) as server:
            self.url = str(server.make_url("")).rstrip("/")
            yield self

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        if request.path != "/api/v1/query_range":
            return web.json_response({"status": "error", "error": "not found"}, status=404)
        if self.reply is not None:
            return self.reply(request)
        start, end = float(request.query["start"]), float(request.query["end"])
        step = float(request.query["step"])
        query = request.query["query"]
        values = []
        for k in range(math.floor((end - start) / step) + 1):
            value = self.samples(query, start + k * step)
            if value is not None:
                values.append([start + k * step, value])
        result = [{"metric": {}, "values": values}] if values else []
        return web.json_response(
            {"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    @property
    def queries(self) -> list[str]:
        """The query text of every request, in arrival order."""
        return [params["query"] for _, params in self.requests]
