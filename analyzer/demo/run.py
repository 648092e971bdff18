"""``canaryd demo``: the whole product on loopback, with nothing installed.

It starts the real daemon (SQLite, scrape source) and, beside it, two simulated services, each
with a baseline and a canary deployment that expose real Prometheus metrics — ``checkout``'s
canary is healthy, ``search``'s has 5× the error rate and +80 ms latency — and a deploy-system
stand-in that verifies and records the signed webhooks. It registers both canaries over the
HTTP API, prints their progress, and ends when the bad one is rolled back and the good one
promoted, listing the webhooks received. ``--keep`` leaves everything up for a look at the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from analyzer.daemon import Daemon
from analyzer.demo.simulator import DEMO_CONFIG, SimulatedDeployment
from analyzer.logs import configure_logging
from analyzer.settings import Settings
from analyzer.webhooks.message import verify

__all__ = ["DeployStandIn", "run_demo"]


@dataclass
class DeployStandIn:
    """The deploy system's side: receives, verifies and records the webhooks."""

    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)

    async def hook(self, request: web.Request) -> web.Response:
        """POST /hooks/canary: 401 on a bad signature, else record and 204."""
        body = await request.read()
        if not verify(body, self.secret, request.headers.get("X-Canaryd-Signature-256", "")):
            return web.Response(status=401, text="bad signature")
        event = json.loads(body)
        event["delivery"] = request.headers.get("X-Canaryd-Delivery", "")
        self.received.append(event)
        return web.Response(status=204)


def _bound_socket() -> socket.socket:
    """A socket bound to a port the kernel picked on 127.0.0.1: the port is known, and nobody
    else can take it, before anything listens on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(
    app: web.Application, sock: socket.socket | None = None
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``sock`` (a fresh :func:`_bound_socket` if none); its runner and port.
    The runner's cleanup closes the socket."""
    sock = sock or _bound_socket()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])


@dataclass
class _Fleet:
    deployments: dict[str, SimulatedDeployment]
    runners: list[web.AppRunner] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        for name, dep in self.deployments.items():
            app = web.Application()
            app.router.add_get("/metrics", dep.metrics)
            runner, port = await _serve(app)
            self.runners.append(runner)
            self.urls[name] = f"http://127.0.0.1:{port}/metrics"

    async def traffic(self, stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for dep in self.deployments.values():
                dep.advance(now - last)
            last = now


def _deployments() -> dict[str, SimulatedDeployment]:
    return {
        "checkout-baseline": SimulatedDeployment("checkout-baseline", 0.005, 0.120, seed=1),
        "checkout-canary": SimulatedDeployment("checkout-canary", 0.005, 0.120, seed=2),
        "search-baseline": SimulatedDeployment("search-baseline", 0.005, 0.120, seed=3),
        "search-canary": SimulatedDeployment("search-canary", 0.025, 0.200, seed=4),
    }


def _registration(service: str, version: str, urls: dict[str, str], hook: str) -> dict[str, Any]:
    return {
        "name": f"{service}-{version}",
        "service": service,
        "config_inline": DEMO_CONFIG,
        "baseline": {
            "labels": {"deployment": f"{service}-baseline"},
            "targets": [urls[f"{service}-baseline"]],
        },
        "canary": {
            "labels": {"deployment": f"{service}-canary"},
            "targets": [urls[f"{service}-canary"]],
        },
        "stages": [
            {"weight": 10, "duration": "20s"},
            {"weight": 50, "duration": "20s"},
            {"weight": 100, "duration": "0s"},
        ],
        "webhook": {"url": hook},
        "mode": "live",
        "metadata": {"commit": secrets.token_hex(4)},
    }


def _line(c: dict[str, Any]) -> str:
    score = "-" if c.get("score") is None else f"{c['score']:g}"
    stage = f"{c['stage'] + 1}/{len(c['stages'])} ({c['weight']:g}%)"
    return (
        f"  {c['name']:<18} {c['phase']:<12} stage {stage:<12} score {score:<6} {c['reason'][:90]}"
    )


async def _watch(
    client: aiohttp.ClientSession, api: str, ids: list[str], deadline: float
) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        states = []
        for cid in ids:
            async with client.get(f"{api}/api/v1/canaries/{cid}/verdict") as _:
                pass
            async with client.get(f"{api}/api/v1/canaries/{cid}") as resp:
                states.append(await resp.json())
        print(time.strftime("%H:%M:%S"), *(_line(c) for c in states), sep="\n", flush=True)
        if all(c["phase"] in ("promoted", "rolled_back", "aborted", "failed") for c in states):
            return states
        await asyncio.sleep(3.0)
    return states


async def _delivered(
    client: aiohttp.ClientSession, api: str, ids: list[str], deadline: float
) -> None:
    while time.monotonic() < deadline:
        done = True
        for cid in ids:
            async with client.get(f"{api}/api/v1/canaries/{cid}") as resp:
                body = await resp.json()
            done &= all(d["state"] != "pending" for d in body.get("deliveries") or [])
        if done:
            return
        await asyncio.sleep(0.5)


async def run_demo(*, keep: bool = False, timeout_s: float = 180.0) -> int:
    """Run the demo; 0 when the bad canary was rolled back and the good one promoted."""
    configure_logging("warning")
    secret, token = secrets.token_hex(16), secrets.token_hex(16)
    deployments = _deployments()
    sims = _Fleet(deployments)
    await sims.start()
    stand_in = DeployStandIn(secret)
    hook_app = web.Application()
    hook_app.router.add_post("/hooks/canary", stand_in.hook)
    hook_runner, hook_port = await _serve(hook_app)
    sock = _bound_socket()  # the daemon's: its port goes into the settings before it listens
    port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="canaryd-demo-") as tmp:
        settings = Settings(
            listen=f"127.0.0.1:{port}",
            database_url=f"sqlite:///{tmp}/canaryd.db",
            api_tokens=[token],
            webhook_secret=secret,
            webhook_allowed_hosts=[f"127.0.0.1:{hook_port}"],
            scrape_allowed_hosts=[u.split("/")[2] for u in sims.urls.values()],  # host:port
            config_dir=Path(tmp) / "configs",
            shutdown_grace_s=5.0,
        )
        runner, _ = await _serve(Daemon(settings).build(), sock)
        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(sims.traffic(stop))
                try:
                    code = await _drive(
                        settings,
                        token,
                        sims,
                        stand_in,
                        hook_port=hook_port,
                        keep=keep,
                        timeout_s=timeout_s,
                    )
                finally:
                    stop.set()
        finally:
            await runner.cleanup()
            await hook_runner.cleanup()
            for r in sims.runners:
                await r.cleanup()
    return code


async def _drive(
    settings: Settings,
    token: str,
    sims: _Fleet,
    stand_in: DeployStandIn,
    *,
    hook_port: int,
    keep: bool,
    timeout_s: float,
) -> int:
    api = f"http://{settings.listen}"
    hook = f"http://127.0.0.1:{hook_port}/hooks/canary"
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout_s
    print(f"canaryd demo: daemon at {api}; deploy-system stand-in at {hook}", flush=True)
    async with aiohttp.ClientSession(headers=headers) as client:
        ids = []
        for service, version in (("checkout", "2.3.1"), ("search", "5.0.0")):
            body = _registration(service, version, sims.urls, hook)
            async with client.post(f"{api}/api/v1/canaries", json=body) as resp:
                created = await resp.json()
                if resp.status != 201:
                    print(f"registration failed ({resp.status}): {created}", file=sys.stderr)
                    return 1
            print(f"registered {created['name']} as {created['id']}", flush=True)
            ids.append(created["id"])
        states = await _watch(client, api, ids, deadline)
        await _delivered(client, api, ids, min(deadline, time.monotonic() + 30))
        ok = _summary(states, stand_in)
        if keep:
            print(
                f"\n--keep: the API stays up at {api} (token {token}); Ctrl-C to stop.", flush=True
            )
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
    return 0 if ok else 1


def _summary(states: list[dict[str, Any]], stand_in: DeployStandIn) -> bool:
    phases = {c["service"]: c["phase"] for c in states}
    print("\nwebhooks received by the deploy system (signatures verified):")
    for event in stand_in.received:
        print(
            f"  {event['delivery']:<36} {event['event']:<9} {event['name']:<16} "
            f"weight {event['weight']:g}%  {event['reason'][:80]}"
        )
    events = {(e["service"], e["event"]) for e in stand_in.received}
    ok = (
        phases.get("search") == "rolled_back"
        and phases.get("checkout") == "promoted"
        and ("search", "rollback") in events
        and ("checkout", "promote") in events
    )
    verdict = "as expected" if ok else "NOT as expected"
    print(f"\nresult: search {phases.get('search')}, checkout {phases.get('checkout')} — {verdict}")
    return ok
