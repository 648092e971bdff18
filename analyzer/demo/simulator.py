"""Simulated deployments for the demo, the backtests and the end-to-end tests.

A :class:`SimulatedDeployment` serves Poisson traffic with a given error rate and log-normal
latency and exposes it as real Prometheus metrics (the usual HTTP golden signals); the query
templates and the demo's judge config read exactly those metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = [
    "DEMO_CONFIG",
    "ERROR_RATIO_QUERY",
    "LATENCY_BUCKETS",
    "LATENCY_P99_QUERY",
    "SimulatedDeployment",
]


LATENCY_BUCKETS = (*(round(0.025 * i, 3) for i in range(1, 41)), 1.5, 2.0, 5.0)


ERROR_RATIO_QUERY: dict[str, str] = {
    "events": 'sum(increase(http_requests_total{code=~"5..",${selector}}[${step}]))',
    "exposure": "sum(increase(http_requests_total{${selector}}[${step}]))",
}
"""5xx responses over all responses per step, of the metrics a :class:`SimulatedDeployment`
(or any service with the usual HTTP golden signals) exposes."""


LATENCY_P99_QUERY = (
    "histogram_quantile(0.99, sum by (le) "
    "(rate(http_request_duration_seconds_bucket{${selector}}[${step}])))"
)
"""The 99th-percentile latency per step, from the same metrics."""


DEMO_CONFIG: dict[str, Any] = {
    "name": "demo-golden-signals",
    "description": "The demo's judge config: error ratio and p99 latency, 1 s steps.",
    "step": "1s",
    "analysis_interval": "10s",
    "score_thresholds": {"pass": 75, "marginal": 50},
    "groups": {"errors": 60, "latency": 40},
    "metrics": [
        {
            "name": "error_rate",
            "group": "errors",
            "kind": "count",
            "judge": "mann-whitney",
            "direction": "increase",
            "critical": True,
            "effect_size": {"allowed_increase": 1.5, "critical_increase": 2.0},
            "query": ERROR_RATIO_QUERY,
        },
        {
            "name": "latency_p99",
            "group": "latency",
            "kind": "series",
            "judge": "mann-whitney",
            "direction": "increase",
            "effect_size": {"allowed_increase": 1.1, "critical_increase": 1.5},
            "query": LATENCY_P99_QUERY,
        },
    ],
    "kill_switch": [
        {"metric": "error_rate", "max_ratio": 3.0, "min_exposure": 2000, "window": "10s"},
        {"metric": "latency_p99", "max_increase": 0.05, "min_points": 5, "window": "10s"},
    ],
}


@dataclass
class SimulatedDeployment:
    """One deployment: Poisson traffic with an error rate and a log-normal latency."""

    name: str
    error_rate: float
    latency_s: float
    rps: float = 300.0
    seed: int = 0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.requests = Counter(
            "http_requests", "Requests served.", ["code"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def advance(self, seconds: float) -> None:
        """Serve ``seconds`` worth of simulated requests."""
        n = int(self.rng.poisson(self.rps * seconds))
        errors = int(self.rng.binomial(n, self.error_rate))
        self.requests.labels(code="200").inc(n - errors)
        if errors:
            self.requests.labels(code="503").inc(errors)
        for value in self.rng.lognormal(np.log(self.latency_s), 0.25, size=n).tolist():
            self.latency.observe(value)

    async def metrics(self, _request: web.Request) -> web.Response:
        """GET /metrics: the Prometheus exposition."""
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")
