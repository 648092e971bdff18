"""Fixtures for the end-to-end tests: real processes and servers, all on 127.0.0.1.

- ``exporter``: four simulated deployments (``analyzer.demo.simulator.SimulatedDeployment``),
  each on its own port, serving real Prometheus exposition; traffic is generated for the time
  elapsed since the previous scrape, so no background task is needed.
- ``prometheus``: the real ``prometheus`` binary with a generated ``prometheus.yml`` scraping
  the exporter every second, each target labelled ``deployment=<name>``.
- ``receiver``: the deploy system's side of the webhooks; checks the HMAC-SHA256 signature
  itself with the standard library (401 when it does not match), so a fault shared by the
  daemon's ``sign`` and ``verify`` cannot hide, and records only verified events.
- ``start_daemon``: starts the real ``canaryd serve`` process with CANARYD_* settings.

Every process is terminated in teardown, also when the test fails; every wait is bounded.
Without the prometheus binary the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from analyzer.demo.simulator import SimulatedDeployment
from support.procs import terminate

HOST = "127.0.0.1"
SCRAPE_INTERVAL = "1s"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

# name -> (error rate, median latency in seconds); each service has a baseline and a canary.
DEPLOYMENTS = {
    "checkout-baseline": (0.01, 0.100),
    "checkout-canary": (0.01, 0.100),
    "search-baseline": (0.01, 0.100),
    "search-canary": (0.05, 0.180),
}
RPS = 1000.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on a fresh 127.0.0.1 port; the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = _bound_socket()
    port = int(sock.getsockname()[1])
    await web.SockSite(runner, sock).start()
    return runner, port


def tail(path: Path, lines: int = 40) -> str:
    """The end of a log file, for failure messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


async def wait_for(
    probe: Callable[[], Awaitable[bool]], *, timeout_s: float, interval_s: float = 0.2
) -> bool:
    """Poll ``probe`` until it is true or ``timeout_s`` has passed; whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await probe():
            return True
        await asyncio.sleep(interval_s)
    return False


Until = Callable[..., Awaitable[bool]]


@pytest.fixture
def until() -> Until:
    """``await until(probe, timeout_s=...)``: poll an async probe within a bounded time."""
    return wait_for


# -- the prometheus binary ------------------------------------------------------------------
@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the prometheus binary; fails under CI=true when it is missing, else skips."""
    path = shutil.which("prometheus")
    if path is None:
        why = "the prometheus binary is not on PATH (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)
    return path


# -- the exporter ---------------------------------------------------------------------------
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
class Exporter:
    """The four deployments' targets: name -> ``127.0.0.1:port``."""

    targets: dict[str, str]
    deployments: dict[str, LiveDeployment]


@pytest.fixture
async def exporter() -> AsyncIterator[Exporter]:
    """Four deployments serving /metrics, each on its own 127.0.0.1 port."""
    runners: list[web.AppRunner] = []
    targets: dict[str, str] = {}
    live: dict[str, LiveDeployment] = {}
    try:
        for seed, (name, (error_rate, latency_s)) in enumerate(DEPLOYMENTS.items(), start=1):
            dep = LiveDeployment(
                SimulatedDeployment(name, error_rate, latency_s, rps=RPS, seed=seed)
            )
            app = web.Application()
            app.router.add_get("/metrics", dep.metrics)
            runner, port = await serve(app)
            runners.append(runner)
            targets[name], live[name] = f"{HOST}:{port}", dep
        yield Exporter(targets=targets, deployments=live)
    finally:
        for runner in runners:
            await runner.cleanup()


# -- prometheus -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its base URL and log file."""

    url: str
    log: Path

    def log_tail(self) -> str:
        """The end of its log, for failure messages."""
        return tail(self.log)


def prometheus_config(targets: Mapping[str, str]) -> dict[str, Any]:
    """prometheus.yml: one job, one static target per deployment labelled with its name."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "canaryd-e2e",
                "static_configs": [
                    {"targets": [target], "labels": {"deployment": name}}
                    for name, target in targets.items()
                ],
            }
        ],
    }


@pytest.fixture
async def prometheus(
    prometheus_bin: str, exporter: Exporter, tmp_path: Path
) -> AsyncIterator[Prometheus]:
    """Real Prometheus on a free 127.0.0.1 port scraping the exporter; stopped in teardown."""
    home = tmp_path / "prometheus"
    home.mkdir()
    config = home / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(exporter.targets)), encoding="utf-8")
    port = free_port()
    log = home / "prometheus.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--log.level=warn",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{HOST}:{port}"
    try:
        async with aiohttp.ClientSession() as client:
            ready = await wait_for(
                lambda: _ok(client, f"{url}/-/ready", proc), timeout_s=READY_TIMEOUT_S
            )
        if not ready:
            pytest.fail(f"prometheus was not ready in {READY_TIMEOUT_S:g}s:\n{tail(log)}")
        yield Prometheus(url=url, log=log)
    finally:
        await terminate(proc, STOP_TIMEOUT_S)


async def _ok(client: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process) -> bool:
    if proc.returncode is not None:
        pytest.fail(f"process exited with {proc.returncode} before {url} answered")
    try:
        async with client.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


# -- the webhook receiver -------------------------------------------------------------------
@dataclass
class Receiver:
    """The deploy system's webhook endpoint: verifies the signature, records verified events."""

    secret: str
    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0

    def signature_ok(self, body: bytes, header: str) -> bool:
        """DESIGN §5: ``sha256=<hex HMAC-SHA256 of the raw body with the shared secret>``."""
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"sha256={digest}".encode(), header.encode())

    async def hook(self, request: web.Request) -> web.Response:
        """POST /hooks/canary: 401 on a bad signature; else record the event and 204."""
        body = await request.read()
        if not self.signature_ok(body, request.headers.get("X-Canaryd-Signature-256", "")):
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        event = json.loads(body)
        event["_headers"] = {
            "event": request.headers.get("X-Canaryd-Event", ""),
            "delivery": request.headers.get("X-Canaryd-Delivery", ""),
        }
        self.events.append(event)
        return web.Response(status=204)

    def of(self, canary_id: str) -> list[str]:
        """The verified events for one canary, in arrival order."""
        return [e["event"] for e in self.events if e["canary_id"] == canary_id]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on a free 127.0.0.1 port with a fresh secret."""
    hook = Receiver(secret=os.urandom(16).hex())
    app = web.Application()
    app.router.add_post("/hooks/canary", hook.hook)
    runner, port = await serve(app)
    hook.url = f"http://{HOST}:{port}/hooks/canary"
    try:
        yield hook
    finally:
        await runner.cleanup()


# -- the daemon -----------------------------------------------------------------------------
@dataclass
class Daemon:
    """A running ``canaryd serve`` process."""

    proc: asyncio.subprocess.Process
    url: str
    token: str
    log: Path
    grace_s: float

    def log_tail(self) -> str:
        """The end of its log, for failure messages."""
        return tail(self.log)


StartDaemon = Callable[[Mapping[str, str]], Awaitable[Daemon]]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start ``python -m analyzer.cli serve`` with CANARYD_* settings; stopped in teardown.

    The caller's settings are added to a listen address, a tmp SQLite database, a token and a
    shutdown grace period; the function returns once /readyz answers 200.
    """
    started: list[asyncio.subprocess.Process] = []

    async def start(settings: Mapping[str, str]) -> Daemon:
        port, token, grace_s = free_port(), os.urandom(16).hex(), 5.0
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANARYD_")}
        env |= {
            "CANARYD_LISTEN": f"{HOST}:{port}",
            "CANARYD_DATABASE_URL": f"sqlite:///{tmp_path / 'canaryd.db'}",
            "CANARYD_API_TOKENS": token,
            "CANARYD_SHUTDOWN_GRACE_S": str(grace_s),
            "CANARYD_PUBLIC_URL": f"http://{HOST}:{port}",
            "CANARYD_LOG_LEVEL": "info",
            **settings,
        }
        log = tmp_path / "canaryd.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "analyzer.cli",
                "serve",
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        started.append(proc)
        url = f"http://{HOST}:{port}"
        async with aiohttp.ClientSession() as client:
            ready = await wait_for(
                lambda: _ok(client, f"{url}/readyz", proc), timeout_s=READY_TIMEOUT_S
            )
        if not ready:
            pytest.fail(f"canaryd was not ready in {READY_TIMEOUT_S:g}s:\n{tail(log)}")
        return Daemon(proc=proc, url=url, token=token, log=log, grace_s=grace_s)

    try:
        yield start
    finally:
        for proc in started:
            await terminate(proc, STOP_TIMEOUT_S)
