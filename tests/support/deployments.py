"""Simulated deployments serving real Prometheus exposition on 127.0.0.1, for the end-to-end tests.

A :class:`LiveDeployment` wraps ``analyzer.demo.simulator.SimulatedDeployment``: at every scrape
it first serves the traffic for the time since the previous one, so no background task is
needed. :func:`serving_deployments` serves several, each on its own port (a socket bound to port 0).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from analyzer.demo.simulator import SimulatedDeployment
from support.loopback import HOST, serving

__all__ = ["DEPLOYMENTS", "Deployments", "LiveDeployment", "serving_deployments"]

RPS = 1000.0
DEPLOYMENTS: dict[str, tuple[float, float]] = {
    "checkout-baseline": (0.01, 0.100),
    "checkout-canary": (0.01, 0.100),
    "search-baseline": (0.01, 0.100),
    "search-canary": (0.05, 0.180),
}
"""name → (error rate, median latency in seconds); each service has a baseline and a canary,
``search``'s canary with 5× the errors and +80 ms."""


@dataclass
class LiveDeployment:
    """A simulated deployment whose traffic catches up with the clock at every scrape."""

    sim: SimulatedDeployment
    last: float = field(default_factory=time.monotonic)
    scrapes: int = 0

    async def metrics(self, request: web.Request) -> web.Response:
        """GET /metrics: serve the traffic since the previous scrape, then the exposition."""
        now = time.monotonic()
        self.sim.advance(min(now - self.last, 10.0))
        self.last = now
        self.scrapes += 1
        return await self.sim.metrics(request)


@dataclass
class Deployments:
    """The deployments' targets: name → ``127.0.0.1:port`` (``metrics_url`` adds the path)."""

    targets: dict[str, str]
    deployments: dict[str, LiveDeployment]

    def metrics_url(self, name: str) -> str:
        """``http://127.0.0.1:port/metrics`` of one deployment."""
        return f"http://{self.targets[name]}/metrics"


@contextlib.asynccontextmanager
async def serving_deployments(
    deployments: Mapping[str, tuple[float, float]] = DEPLOYMENTS, *, rps: float = RPS, seed: int = 1
) -> AsyncIterator[Deployments]:
    """Each deployment (name → error rate, median latency) serving /metrics on its own port
    until the block ends; seeded ``seed``, ``seed + 1``, … in order."""
    live = {
        name: LiveDeployment(SimulatedDeployment(name, errors, latency_s, rps=rps, seed=seed + n))
        for n, (name, (errors, latency_s)) in enumerate(deployments.items())
    }
    async with contextlib.AsyncExitStack() as stack:
        targets = {}
        for name, dep in live.items():
            app = web.Application()
            app.router.add_get("/metrics", dep.metrics)
            server = await stack.enter_async_context(serving(app))
            targets[name] = f"{HOST}:{server.port}"
        yield Deployments(targets=targets, deployments=live)
