"""End to end: the daemon judges sequentially, live — rollback within the first interval, early
promotion with an "early" reason.

In-process: ``analyzer.daemon.Daemon`` (tmp SQLite, the scrape source, a bearer token, a webhook
secret) serves its API on 127.0.0.1, three
``analyzer.demo.simulator.SimulatedDeployment``s expose real
Prometheus metrics on their own loopback ports (one shared baseline, a healthy canary, and one
with 3× the baseline's error rate), and a receiver checks every webhook's HMAC with
``analyzer.webhooks.verify``. Both canaries are registered over HTTP with a config whose only
metric is the error rate judged by ``sequential-count`` at 1 s steps.

The analysis interval (30 s) is longer than the bad canary may live: a critical sequential
failure rolls back on the poll that proves it, so the rollback must come before the first
interval ends. The healthy canary's stage lasts 50 s with a 5 s minimum: once non-inferiority
(rate ratio < 1.2) is proven it is promoted early. (The lifecycle takes that early end on a
scored poll — an interval boundary — so the interval is 30 s rather than the minutes a real
config would use: long enough for the rollback to beat it, short enough for the test to stay
within a minute.) α = 0.01 keeps the healthy canary's false-rollback chance well below 1 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from analyzer.daemon import Daemon
from analyzer.demo.simulator import SimulatedDeployment
from analyzer.settings import Settings
from analyzer.webhooks.message import verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

HOST = "127.0.0.1"
ANALYSIS_INTERVAL_S = 30.0
STAGE_S = 50.0
MIN_STAGE_S = 5.0
DEADLINE_S = 55.0
RPS = 1000.0
ERROR_RATE = 0.15  # ~150 errors/s per arm: non-inferiority is proven in ~10 s

CONFIG: dict[str, Any] = {
    "name": "live-sequential",
    "description": "Error rate judged sequentially at 1 s steps (the live e2e test).",
    "step": "1s",
    "analysis_interval": f"{ANALYSIS_INTERVAL_S:g}s",
    "alpha": 0.01,
    "on_inconclusive": "pause",
    "metrics": [
        {
            "name": "error_rate",
            "kind": "count",
            "judge": "sequential-count",
            "direction": "increase",
            "critical": True,
            "tolerance": 1.2,
            "query": {
                "events": 'sum(increase(http_requests_total{code=~"5..",${selector}}[${step}]))',
                "exposure": "sum(increase(http_requests_total{${selector}}[${step}]))",
            },
        }
    ],
}

STAGES = [
    {"weight": 50, "duration": f"{STAGE_S:g}s", "min_duration": f"{MIN_STAGE_S:g}s"},
    {"weight": 100, "duration": "0s"},
]


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


async def _serve(
    app: web.Application, sock: socket.socket | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = sock or _bound_socket()
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])


@dataclass
class Receiver:
    """The deploy system: verifies each webhook with analyzer.webhooks.verify, records it."""

    secret: str
    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0

    async def hook(self, request: web.Request) -> web.Response:
        """POST /hooks: 401 on a bad signature, else record and 204."""
        body = await request.read()
        if not verify(body, self.secret, request.headers.get("X-Canaryd-Signature-256", "")):
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        event = json.loads(body)
        event["header_event"] = request.headers.get("X-Canaryd-Event", "")
        self.events.append(event)
        return web.Response(status=204)

    def of(self, canary_id: str) -> list[dict[str, Any]]:
        """Verified events of one canary, in arrival order."""
        return [e for e in self.events if e["canary_id"] == canary_id]


@dataclass
class Live:
    """Everything running: the API's URL and token, the receiver, the deployments' URLs."""

    api: str
    token: str
    hook_url: str
    receiver: Receiver
    targets: dict[str, str]


async def _traffic(deployments: list[SimulatedDeployment], stop: asyncio.Event) -> None:
    """Serve simulated requests for the time that passed, every 50 ms."""
    last = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
        now = time.monotonic()
        for dep in deployments:
            dep.advance(now - last)
        last = now


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """The daemon, three deployments, the receiver and the traffic; all torn down after."""
    secret, token = os.urandom(16).hex(), os.urandom(16).hex()
    deployments = [
        SimulatedDeployment("checkout-baseline", ERROR_RATE, 0.120, rps=RPS, seed=11),
        SimulatedDeployment("checkout-good", ERROR_RATE, 0.120, rps=RPS, seed=12),
        SimulatedDeployment("checkout-bad", 3 * ERROR_RATE, 0.120, rps=RPS, seed=13),
    ]
    runners: list[web.AppRunner] = []
    stop = asyncio.Event()
    traffic: asyncio.Task[None] | None = None
    try:
        targets = {}
        for dep in deployments:
            app = web.Application()
            app.router.add_get("/metrics", dep.metrics)
            runner, port = await _serve(app)
            runners.append(runner)
            targets[dep.name] = f"http://{HOST}:{port}/metrics"
        receiver = Receiver(secret)
        hooks = web.Application()
        hooks.router.add_post("/hooks", receiver.hook)
        runner, hook_port = await _serve(hooks)
        runners.append(runner)
        sock = _bound_socket()
        port = int(sock.getsockname()[1])
        settings = Settings(
            listen=f"{HOST}:{port}",
            database_url=f"sqlite:///{tmp_path / 'canaryd.db'}",
            api_tokens=[token],
            webhook_secret=secret,
            webhook_allowed_hosts=[f"{HOST}:{hook_port}"],
            config_dir=tmp_path / "configs",
            public_url=f"http://{HOST}:{port}",
            shutdown_grace_s=2.0,
            webhook_timeout_s=5.0,
        )
        runner, _ = await _serve(Daemon(settings).build(), sock)
        runners.append(runner)
        traffic = asyncio.create_task(_traffic(deployments, stop))
        yield Live(
            api=f"http://{HOST}:{port}",
            token=token,
            hook_url=f"http://{HOST}:{hook_port}/hooks",
            receiver=receiver,
            targets=targets,
        )
    finally:
        stop.set()
        if traffic is not None:
            await traffic
        for runner in reversed(runners):  # the daemon first: it stops ticking and delivering
            await runner.cleanup()


def _registration(name: str, canary: str, live: Live) -> dict[str, Any]:
    return {
        "name": name,
        "service": "checkout",
        "config_inline": CONFIG,
        "baseline": {
            "labels": {"deployment": "checkout-baseline"},
            "targets": [live.targets["checkout-baseline"]],
        },
        "canary": {"labels": {"deployment": canary}, "targets": [live.targets[canary]]},
        "stages": STAGES,
        "webhook": {"url": live.hook_url},
        "mode": "live",
        "metadata": {"commit": "e2e-sequential"},
    }


async def _until_settled(
    client: aiohttp.ClientSession, live: Live, ids: list[str], deadline: float
) -> list[dict[str, Any]]:
    """Poll until every canary is terminal and its webhook arrived, or the deadline passes."""
    states: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        states = []
        for cid in ids:
            async with client.get(f"{live.api}/api/v1/canaries/{cid}") as resp:
                assert resp.status == 200
                states.append(await resp.json())
        terminal = all(s["phase"] in ("promoted", "rolled_back", "paused") for s in states)
        if terminal and all(live.receiver.of(cid) for cid in ids):
            return states
        await asyncio.sleep(0.25)
    return states


def _analysis_start(state: dict[str, Any]) -> float:
    """When analysis began: the tick whose reason says so."""
    starts = [t["at"] for t in state["ticks"] if t["reason"] == "analysis started"]
    assert starts, [t["reason"] for t in state["ticks"][:3]]
    return float(starts[0])


class TestSequentialLive:
    """The sequential judge decides on every poll of the live daemon."""

    async def test_bad_canary_rolls_back_in_the_first_interval_good_one_is_promoted_early(
        self, live: Live
    ) -> None:
        """3× errors: rolled back, with the e-value in the reason, before the first analysis
        interval ends; the healthy canary: promoted early, before its stages' full time."""
        deadline = time.monotonic() + DEADLINE_S
        headers = {"Authorization": f"Bearer {live.token}"}
        async with aiohttp.ClientSession(headers=headers) as client:
            ids = {}
            for name, canary in (
                ("checkout-bad", "checkout-bad"),
                ("checkout-good", "checkout-good"),
            ):
                body = _registration(name, canary, live)
                async with client.post(f"{live.api}/api/v1/canaries", json=body) as resp:
                    created = await resp.json()
                    assert resp.status == 201, created
                ids[name] = created["id"]
            bad, good = await _until_settled(client, live, list(ids.values()), deadline)

        assert live.receiver.rejected == 0
        assert bad["phase"] == "rolled_back", bad["reason"]
        rollback = [d for d in bad["decisions"] if d["action"] == "rollback"]
        assert len(rollback) == 1
        took = rollback[0]["decided_at"] - _analysis_start(bad)
        assert 0 < took < ANALYSIS_INTERVAL_S, took
        reason = rollback[0]["reason"]
        assert reason.startswith("error_rate: rate ≥ "), reason
        assert "e = " in reason, reason
        assert "≥ 100" in reason, reason
        hook = live.receiver.of(ids["checkout-bad"])
        assert [e["event"] for e in hook] == ["rollback"]
        assert hook[0]["header_event"] == "rollback"
        assert hook[0]["reason"] == reason

        assert good["phase"] == "promoted", good["reason"]
        promote = [d for d in good["decisions"] if d["action"] == "promote"]
        assert len(promote) == 1
        took = promote[0]["decided_at"] - _analysis_start(good)
        assert MIN_STAGE_S <= took < STAGE_S, took
        reason = promote[0]["reason"]
        assert "early: error_rate: non-inferior: canary/baseline ≤ " in reason, reason
        assert "< tolerance 1.2" in reason, reason
        hook = live.receiver.of(ids["checkout-good"])
        assert [e["event"] for e in hook] == ["promote"]
        assert hook[0]["weight"] == 100
