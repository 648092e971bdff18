"""Helpers for the crash and shutdown tests, beside conftest's fixtures (not a conftest).

- :func:`reserve_port` holds a 127.0.0.1 port bound but not listening — connections to it are
  refused, and nobody else can take it — until :func:`serve_on` starts serving on it: the
  webhook receiver is "down" and comes "up" at the same URL.
- :class:`HookRecorder` stands in front of a verifying webhook handler (conftest's
  ``Receiver.hook``): it records every attempt with its headers and raw body, and can answer the
  first attempt of each delivery 503 and hold requests for a while.
- :class:`SlowProxy` passes Prometheus' HTTP API through with a delay, so ticks take a while.
- :func:`kill9`, :func:`snapshot_db` (the SQLite file read from a copy, so the restarted daemon
  recovers the crashed file itself) and :func:`log_events` (the daemon's JSON log lines).
- :func:`spawn_daemon` starts ``canaryd serve`` without waiting for it to be ready (conftest's
  ``start_daemon`` waits), for signals during start-up; :func:`seed_fleet` fills a database
  with many parked canaries, so that start-up takes a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from analyzer.clock import SystemClock
from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import parse_config
from analyzer.demo.simulator import DEMO_CONFIG
from analyzer.model import Canary, Side, Stage
from analyzer.store.sqlite import SqliteStore

HOST = "127.0.0.1"
HOOK_PATH = "/hooks/canary"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- ports and servers ------------------------------------------------------------------------
def reserve_port() -> socket.socket:
    """A socket bound to a free 127.0.0.1 port and not listening: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


def port_of(sock: socket.socket) -> int:
    """The port a socket is bound to."""
    return int(sock.getsockname()[1])


async def serve_on(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serve ``app`` on an already bound socket (it starts listening now)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


# -- the webhook side -------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    """One POST the daemon made to the webhook, as it arrived."""

    delivery: str
    event: str
    signature: str
    body: bytes
    status: int
    at: float

    @property
    def body_sha256(self) -> str:
        """Digest of the raw body, to compare attempts."""
        return hashlib.sha256(self.body).hexdigest()


@dataclass
class HookRecorder:
    """Records every webhook attempt, then lets ``verify`` (the verifying receiver) answer.

    ``fail_first``: the first attempt of each delivery id is answered 503 (retried by the
    daemon). ``hold_s``: each request is held that long first, or until :meth:`release_all`.
    """

    verify: Handler
    fail_first: bool = False
    hold_s: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    holding: list[str] = field(default_factory=list)
    """Delivery ids of the requests being handled right now."""
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """POST /hooks/canary."""
        self.holding.append(request.headers.get("X-Canaryd-Delivery", ""))
        try:
            body = await request.read()  # cached: ``verify`` reads the same bytes
            if self.hold_s > 0 and not self.released.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.released.wait(), self.hold_s)
            delivery = request.headers.get("X-Canaryd-Delivery", "")
            if self.fail_first and delivery not in self.ids():
                response: web.StreamResponse = web.Response(status=503, text="try again")
            else:
                response = await self.verify(request)
            self.attempts.append(
                Attempt(
                    delivery=delivery,
                    event=request.headers.get("X-Canaryd-Event", ""),
                    signature=request.headers.get("X-Canaryd-Signature-256", ""),
                    body=body,
                    status=response.status,
                    at=time.time(),
                )
            )
            return response
        finally:
            self.holding.remove(request.headers.get("X-Canaryd-Delivery", ""))

    def ids(self) -> set[str]:
        """Delivery ids seen so far."""
        return {a.delivery for a in self.attempts}

    def of(self, delivery: str) -> list[Attempt]:
        """Every attempt of one delivery id, in arrival order."""
        return [a for a in self.attempts if a.delivery == delivery]

    def acknowledged(self, delivery: str) -> list[Attempt]:
        """The attempts of one delivery id that were answered 2xx."""
        return [a for a in self.of(delivery) if 200 <= a.status < 300]

    def release_all(self) -> None:
        """Stop holding requests (now and from now on)."""
        self.released.set()

    def app(self) -> web.Application:
        """An application with the hook at :data:`HOOK_PATH`."""
        app = web.Application()
        app.router.add_post(HOOK_PATH, self.handle)
        return app


# -- a slow Prometheus ------------------------------------------------------------------------
@dataclass
class SlowProxy:
    """Passes GET /api/v1/* to ``upstream`` after ``delay_s``; counts requests in flight."""

    upstream: str
    delay_s: float
    in_progress: int = 0
    answered: int = 0
    session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """Forward one API request."""
        assert self.session is not None
        self.in_progress += 1
        try:
            await asyncio.sleep(self.delay_s)
            url = f"{self.upstream}{request.path}"
            async with self.session.get(url, params=request.query) as resp:
                body = await resp.read()
                self.answered += 1
                return web.Response(status=resp.status, body=body, content_type="application/json")
        finally:
            self.in_progress -= 1

    def app(self) -> web.Application:
        """The proxy's application; its client session lives as long as the app."""

        async def session_ctx(_app: web.Application) -> Any:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            yield
            await self.session.close()

        app = web.Application()
        app.cleanup_ctx.append(session_ctx)
        app.router.add_get("/api/v1/{rest:.*}", self.handle)
        return app


# -- processes --------------------------------------------------------------------------------
async def kill9(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process (no chance to clean up) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10.0)
    assert proc.returncode == -signal.SIGKILL, proc.returncode


async def spawn_daemon(settings: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """Start ``python -m analyzer.cli serve`` with ``settings`` (CANARYD_*) and return at once.

    The caller stops it (:func:`terminate`); it is not known to be ready.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARYD_")}
    env |= {
        "CANARYD_LISTEN": f"{HOST}:{port_of_free()}",
        "CANARYD_API_TOKENS": os.urandom(16).hex(),
        "CANARYD_LOG_LEVEL": "info",
        **settings,
    }
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "analyzer.cli",
            "serve",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def terminate(proc: asyncio.subprocess.Process, timeout_s: float = 10.0) -> None:
    """SIGTERM, a bounded wait, then SIGKILL; always reaps the process."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def port_of_free() -> int:
    """A 127.0.0.1 port that was free a moment ago."""
    with contextlib.closing(reserve_port()) as sock:
        return port_of(sock)


async def seed_fleet(db: Path, config: dict[str, Any], count: int) -> None:
    """A fresh database holding ``count`` canaries in warm-up under ``config``.

    One canary is stored through the store; the rest are copies of its row made in one
    statement (a store transaction per canary, each with its fsync, would take seconds).
    """
    store = SqliteStore(str(db))
    await store.open()
    try:
        version = await Catalog(store, SystemClock()).put(parse_config(config))
        now = time.time()
        canary = Canary(
            id=uuid.uuid4().hex,
            name="seed",
            service="seed",
            config_name=version.name,
            config_hash=version.hash,
            baseline=Side(labels={"deployment": "seed-baseline"}),
            canary=Side(labels={"deployment": "seed-canary"}),
            stages=(Stage(weight=100, duration_s=60),),
            webhook_url=None,
            created_at=now,
            stage_started_at=now,
        )
        await store.create_canary(canary, {})
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    try:
        rest = [r[1] for r in conn.execute("PRAGMA table_info(canaries)") if r[1] != "id"]
        copy = (
            "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < ?) "
            f"INSERT INTO canaries (id, {', '.join(rest)}) "
            f"SELECT c.id || '-' || k.n, {', '.join('c.' + r for r in rest)} FROM canaries AS c, k"
        )
        with conn:
            conn.execute(copy, (count - 1,))
    finally:
        conn.close()


def keep_log(log: Path, name: str) -> Path:
    """Copy a daemon log aside before a restart truncates it; the copy's path."""
    kept = log.with_name(name)
    with contextlib.suppress(OSError):
        shutil.copyfile(log, kept)
    return kept


def log_events(log: Path) -> list[dict[str, Any]]:
    """The daemon's JSON log lines (anything else is skipped)."""
    events = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                events.append(entry)
    return events


# -- the database, read from a copy ------------------------------------------------------------
@dataclass(frozen=True)
class DbSnapshot:
    """Rows of the daemon's SQLite file, by table, each row a dict."""

    canaries: dict[str, dict[str, Any]]
    ticks: dict[str, list[dict[str, Any]]]
    decisions: dict[str, list[dict[str, Any]]]
    outbox: dict[str, list[dict[str, Any]]]


def snapshot_db(path: Path) -> DbSnapshot:
    """Read the database of a stopped daemon from a copy of its files.

    The copy (the main file and its WAL) is opened, so SQLite's recovery and checkpoint run on
    the copy; the original stays exactly as the crash left it for the next daemon to recover.
    """
    with tempfile.TemporaryDirectory(prefix="canaryd-snapshot-") as tmp:
        copy = Path(tmp) / path.name
        for suffix in ("", "-wal"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                shutil.copyfile(source, copy.with_name(copy.name + suffix))
        conn = sqlite3.connect(copy)
        try:
            conn.row_factory = sqlite3.Row
            return DbSnapshot(
                canaries={r["id"]: dict(r) for r in conn.execute("SELECT * FROM canaries")},
                ticks=_by_canary(conn, "SELECT * FROM ticks ORDER BY canary_id, seq"),
                decisions=_by_canary(conn, "SELECT * FROM decisions ORDER BY canary_id, seq"),
                outbox=_by_canary(conn, "SELECT * FROM outbox ORDER BY canary_id, seq"),
            )
        finally:
            conn.close()


def _by_canary(conn: sqlite3.Connection, sql: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(sql):
        out.setdefault(row["canary_id"], []).append(dict(row))
    return out


# -- the daemon's API -------------------------------------------------------------------------
@dataclass
class Api:
    """The daemon's HTTP API over one client session, for one daemon process (URL, token)."""

    client: aiohttp.ClientSession
    url: str
    token: str

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def register(self, body: dict[str, Any]) -> str:
        """POST /api/v1/canaries; the new canary's id."""
        async with self.client.post(
            f"{self.url}/api/v1/canaries", json=body, headers=self._auth
        ) as resp:
            created = await resp.json()
            assert resp.status == 201, created
            return str(created["id"])

    async def act(self, cid: str, action: str) -> dict[str, Any]:
        """POST /api/v1/canaries/{id}/{action}: the canary after it."""
        async with self.client.post(
            f"{self.url}/api/v1/canaries/{cid}/{action}", json={}, headers=self._auth
        ) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
            return body

    async def registration_refused(self, body: dict[str, Any]) -> str:
        """POST a registration to a daemon that is stopping: its status, or "refused"."""
        try:
            async with self.client.post(
                f"{self.url}/api/v1/canaries",
                json=body,
                headers=self._auth,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp:
                return str(resp.status)
        except aiohttp.ClientConnectionError:
            return "refused"

    async def canary(self, cid: str) -> dict[str, Any]:
        """GET /api/v1/canaries/{id}: state, ticks, decisions and deliveries."""
        async with self.client.get(f"{self.url}/api/v1/canaries/{cid}") as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body


async def prometheus_has_data(client: aiohttp.ClientSession, url: str, targets: int) -> bool:
    """Whether Prometheus has a request rate for every target (≥ 2 samples each)."""
    query = "count by (deployment) (rate(http_requests_total[5s]))"
    async with client.get(f"{url}/api/v1/query", params={"query": query}) as resp:
        body = await resp.json()
    return len(body.get("data", {}).get("result", [])) == targets


NOTIFYING = frozenset({"rollback", "step", "promote"})
TERMINAL = frozenset({"promoted", "rolled_back", "aborted", "failed"})


def assert_consistent(snapshot: DbSnapshot) -> None:
    """Every canary's rows agree: ticks and decisions numbered 1..n as its counters say, an
    outbox row for every decision that notifies (and none for another), a finished canary's
    phase as its last decision left it."""
    for cid, row in snapshot.canaries.items():
        ticks = [t["seq"] for t in snapshot.ticks.get(cid, [])]
        assert ticks == list(range(1, row["tick_seq"] + 1)), (cid, ticks, row["tick_seq"])
        decisions = snapshot.decisions.get(cid, [])
        seqs = [d["seq"] for d in decisions]
        assert seqs == list(range(1, row["decision_seq"] + 1)), (cid, seqs, row["decision_seq"])
        live = row["mode"] == "live" and row["webhook_url"]
        wanted = {f"{cid}:{d['seq']}" for d in decisions if live and d["action"] in NOTIFYING}
        outbox = {o["delivery_id"] for o in snapshot.outbox.get(cid, [])}
        assert outbox == wanted, (cid, outbox, wanted)
        if row["phase"] in TERMINAL:
            assert decisions, cid
            assert decisions[-1]["phase_after"] == row["phase"], (cid, decisions[-1])


def golden_signals(name: str, description: str, *, step_s: float = 2.0) -> dict[str, Any]:
    """The demo's judge config at ``step_s`` steps with a 6 s interval, for end-to-end tests:
    error ratio and p99 latency by Mann-Whitney, an error-ratio kill-switch."""
    config = copy.deepcopy(DEMO_CONFIG)
    config.update(
        name=name,
        description=description,
        step=f"{step_s:g}s",
        analysis_interval="6s",
        on_inconclusive="pause",
    )
    config["metrics"][1]["effect_size"] = {"allowed_increase": 1.2, "critical_increase": 1.5}
    config["kill_switch"] = [
        {"metric": "error_rate", "max_ratio": 3.0, "min_exposure": 2000, "window": "6s"}
    ]
    return config
