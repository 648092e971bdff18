"""Fakes shared by the analyzer tests: a recording metric source with deterministic traffic, and
a fake clock that says when the scheduler is asleep. (The webhook receiver and the servers are
in :mod:`support.loopback`, the judge configs in :mod:`support.configs`.)

No mocks of our own code: each fake implements the protocol the daemon talks to (httpx's
``_transports/mock.py`` is the model for :class:`FakeSource`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, assert_never

import numpy as np

from analyzer.clock import FakeClock
from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.metricdata import (
    FloatArray,
    MetricData,
    MetricKind,
    Role,
    SideName,
    metric_data,
    missing_metric,
)
from analyzer.model import Window
from analyzer.sources.protocol import FetchRequest

T0 = 1_767_225_600.0
"""2026-01-01T00:00:00Z, where every fake clock starts."""

Handler = Callable[[FetchRequest], Window | Awaitable[Window]]
MakeConfig = Callable[..., JudgeConfig]
"""The ``make_config`` fixture: :data:`support.configs.BASE_CONFIG` with overrides, validated."""


# -- API requests -----------------------------------------------------------------------------
def auth(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def registration(**changes: Any) -> dict[str, Any]:
    """A valid live registration body (DESIGN §5), two stages and a webhook, with top-level
    keys replaced."""
    body: dict[str, Any] = {
        "name": "checkout-2.3.1",
        "service": "checkout",
        "config": "test-golden",
        "baseline": {"labels": {"deployment": "checkout-baseline"}},
        "canary": {"labels": {"deployment": "checkout-canary"}},
        "stages": [{"weight": 5, "duration": "10m"}, {"weight": 100, "duration": "0s"}],
        "webhook": {"url": "https://deploy.internal/hooks/canary"},
    }
    return body | changes


# -- metric source ----------------------------------------------------------------------------
class FakeSource:
    """A MetricSource answering from ``handler(request)``; records every request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[FetchRequest] = []
        self.closed = False

    async def fetch(self, request: FetchRequest) -> Window:
        """Record the request and answer it with the handler (sync or async)."""
        self.requests.append(request)
        result = self.handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def close(self) -> None:
        """Nothing to release."""
        self.closed = True

    def forget(self, canary_id: str) -> None:
        """Nothing is kept per canary."""

    def times(self, canary_id: str | None = None) -> list[float]:
        """The window end of every request (optionally of one canary), in order."""
        return [r.end for r in self.requests if canary_id in (None, r.canary_id)]


def step_times(request: FetchRequest) -> FloatArray:
    """The window's step times, both ends included."""
    steps = round((request.end - request.start) / request.step_s) + 1
    return request.start + request.step_s * np.arange(steps, dtype=np.float64)


def _noise(at: float, side: str, metric: str) -> float:
    """A standard normal draw fixed by (time, side, metric): stable across windows."""
    seed = [int(at), sum(side.encode()), sum(metric.encode())]
    return float(np.random.default_rng(seed).standard_normal())


@dataclass(frozen=True, slots=True, kw_only=True)
class Traffic:
    """Deterministic HTTP traffic per side: an error rate (count metrics) and a latency level
    (series metrics), each with a little noise that depends only on the step time.

    Called with a FetchRequest it returns the Window for every metric of the request.
    """

    error_rate: Mapping[str, float] = field(
        default_factory=lambda: {"baseline": 0.01, "canary": 0.01}
    )
    latency: Mapping[str, float] = field(default_factory=lambda: {"baseline": 0.2, "canary": 0.2})
    exposure: float = 1000.0

    def side(
        self, request: FetchRequest, side: SideName, kind: MetricKind, metric: str
    ) -> dict[Role, FloatArray]:
        """One side's arrays of one metric over the request's window, by template role."""
        times = step_times(request)
        jitter = np.array([_noise(t, side, metric) for t in times])
        match kind:
            case MetricKind.SERIES:
                return {Role.QUERY: self.latency[side] * (1.0 + 0.05 * jitter)}
            case MetricKind.COUNT:
                exposure = np.full(times.size, self.exposure)
                mean = self.error_rate[side] * self.exposure
                events = np.maximum(0.0, np.round(mean + np.sqrt(max(mean, 1.0)) * jitter))
                return {Role.EVENTS: events, Role.EXPOSURE: exposure}
            case _:
                assert_never(kind)

    def __call__(self, request: FetchRequest) -> Window:
        metrics: dict[str, MetricData] = {}
        for q in request.metrics:
            arrays = {
                (side, role): values
                for side in SideName
                for role, values in self.side(request, side, q.kind, q.name).items()
            }
            metrics[q.name] = metric_data(q.name, q.kind, arrays)
        return Window(start=request.start, end=request.end, step_s=request.step_s, metrics=metrics)


def outage(reason: str = "source unavailable: connection refused") -> Handler:
    """A handler whose every metric comes back all-NaN with ``reason`` (the source is down)."""

    def handle(request: FetchRequest) -> Window:
        steps = step_times(request).size
        metrics = {q.name: missing_metric(q.name, q.kind, steps, reason) for q in request.metrics}
        return Window(start=request.start, end=request.end, step_s=request.step_s, metrics=metrics)

    return handle


# -- clock ------------------------------------------------------------------------------------
class SteppedClock(FakeClock):
    """A FakeClock the test moves in jumps; the daemon's loops say when they are parked
    (``support.dispatching.parked``), so the test jumps only then, never mid-tick."""

    async def jump_to(self, at: float) -> None:
        """Move the time to ``at`` in one jump (nothing happens in between)."""
        await self.advance(max(0.0, at - self.now()))
