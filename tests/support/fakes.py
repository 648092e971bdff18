"""Fakes shared by the analyzer tests: a recording metric source with deterministic traffic, a
fake clock that says when the scheduler is asleep, and a recording webhook receiver.

No mocks of our own code: each fake implements the protocol the daemon talks to (httpx's
``_transports/mock.py`` is the model for :class:`FakeSource`).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestServer

from analyzer.clock import FakeClock
from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.demo.simulator import ERROR_RATIO_QUERY, LATENCY_P99_QUERY
from analyzer.model import FloatArray, MetricData, Window
from analyzer.sources.protocol import FetchRequest
from analyzer.webhooks.message import verify

T0 = 1_767_225_600.0
"""2026-01-01T00:00:00Z, where every fake clock starts."""
WEBHOOK_SECRET = "wh-test-secret-3c9a"

Handler = Callable[[FetchRequest], Window | Awaitable[Window]]


BASE_CONFIG: dict[str, Any] = {
    "name": "test-golden",
    "step": "60s",
    "analysis_interval": "5m",
    "warmup": "0s",
    "score_thresholds": {"pass": 75, "marginal": 50},
    "on_no_data": "hold",
    "on_inconclusive": "pause",
    "groups": {"errors": 60, "latency": 40},
    "metrics": [
        {
            "name": "error_rate",
            "group": "errors",
            "kind": "count",
            "judge": "mann-whitney",
            "direction": "increase",
            "critical": True,
            "effect_size": {"allowed_increase": 1.2, "critical_increase": 2.0},
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
    "kill_switch": [{"metric": "error_rate", "max": 0.2, "min_exposure": 200}],
}
"""Two Kayenta-style metrics (errors as a count, p99 as a series) and one kill-switch rule."""

MakeConfig = Callable[..., JudgeConfig]


def config_body(**overrides: Any) -> dict[str, Any]:
    """The base config's JSON body with top-level keys replaced."""
    return {**copy.deepcopy(BASE_CONFIG), **overrides}


# -- metric source ----------------------------------------------------------------------------
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

    def side(self, request: FetchRequest, side: str, kind: str, metric: str) -> dict[str, Any]:
        """One side's arrays of one metric over the request's window."""
        times = step_times(request)
        jitter = np.array([_noise(t, side, metric) for t in times])
        if kind == "series":
            return {"values": self.latency[side] * (1.0 + 0.05 * jitter)}
        exposure = np.full(times.size, self.exposure)
        mean = self.error_rate[side] * self.exposure
        events = np.maximum(0.0, np.round(mean + np.sqrt(max(mean, 1.0)) * jitter))
        return {"events": events, "exposure": exposure}

    def __call__(self, request: FetchRequest) -> Window:
        metrics = {
            q.name: MetricData(
                name=q.name,
                kind=q.kind,
                baseline=self.side(request, "baseline", q.kind, q.name),
                canary=self.side(request, "canary", q.kind, q.name),
            )
            for q in request.metrics
        }
        return Window(start=request.start, end=request.end, step_s=request.step_s, metrics=metrics)


def outage(reason: str = "source unavailable: connection refused") -> Handler:
    """A handler whose every metric comes back all-NaN with ``reason`` (the source is down)."""

    def handle(request: FetchRequest) -> Window:
        nan = np.full(step_times(request).size, np.nan)
        metrics = {}
        for q in request.metrics:
            arrays = {"values": nan} if q.kind == "series" else {"events": nan, "exposure": nan}
            metrics[q.name] = MetricData(
                name=q.name, kind=q.kind, baseline=dict(arrays), canary=dict(arrays), error=reason
            )
        return Window(start=request.start, end=request.end, step_s=request.step_s, metrics=metrics)

    return handle


# -- clock ------------------------------------------------------------------------------------
class SteppedClock(FakeClock):
    """A FakeClock that also tells the test when a task has gone to sleep on it, so the test
    jumps time only while the scheduler is parked (never mid-tick)."""

    def __init__(self, start: float = T0) -> None:
        super().__init__(start)
        self.deadlines: list[float] = []
        self._parked = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        """Note the deadline, signal "parked", then sleep on the fake time."""
        self.deadlines.append(self.now() + max(0.0, seconds))
        self._parked.set()
        await super().sleep(seconds)

    async def parked(self, *, limit: int = 200) -> float:
        """Wait until a sleeper is parked with a deadline in the future; returns the deadline.

        Bounded: at most ``limit`` sleeps are looked at (a busy loop fails the test)."""
        for _ in range(limit):
            async with asyncio.timeout(10):
                await self._parked.wait()
            self._parked.clear()
            if self.deadlines[-1] > self.now():
                for _ in range(3):  # let the sleeper reach its wait
                    await asyncio.sleep(0)
                return self.deadlines[-1]
        msg = f"no task parked on the clock after {limit} sleeps"
        raise AssertionError(msg)

    async def jump_to(self, at: float) -> None:
        """Move the time to ``at`` in one jump (nothing happens in between)."""
        await self.advance(max(0.0, at - self.now()))


# -- webhook receiver -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One webhook request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    signed: bool


class WebhookReceiver:
    """A deploy system's webhook on 127.0.0.1:0 that records requests and checks their HMAC
    with :func:`analyzer.webhooks.verify`."""

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        self.secret = secret
        self.requests: list[Received] = []
        self.status = 200
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        """The hook's URL."""
        assert self.server is not None
        return str(self.server.make_url("/hooks/canary"))

    @property
    def host(self) -> str:
        """``127.0.0.1:port``, the allow-list entry of this receiver."""
        assert self.server is not None
        return f"{self.server.host}:{self.server.port}"

    @property
    def events(self) -> list[str]:
        """X-Canaryd-Event of every request, in arrival order."""
        return [r.headers["X-Canaryd-Event"] for r in self.requests]

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request and answer with ``status``."""
        body = await request.read()
        headers = dict(request.headers)
        signed = verify(body, self.secret, headers.get("X-Canaryd-Signature-256", ""))
        self.requests.append(Received(headers=headers, body=body, signed=signed))
        return web.Response(status=self.status)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/hooks/canary", self.handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()

    async def close(self) -> None:
        """Stop listening."""
        if self.server is not None:
            await self.server.close()
