"""The HTTP API as ``Daemon.build`` wires it, for the API tests: a real SQLite store, catalog and
fleet, a Scheduler over a fake source that the tests wake by hand, and the app on 127.0.0.1.

- :func:`wire`: fleet, scheduler and the app's context over a store and catalog.
- :class:`Api`: the app in the test's own loop, with aiohttp's TestClient: :func:`api_over` a
  store and catalog, or :func:`running_api` over a database file of its own (opened with the
  ``test-golden`` config, closed at the end; open it again to see what survives a restart).
- :class:`ThreadedApi`: the app in a thread with its own loop, for blocking clients
  (schemathesis and requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from analyzer.api.app import build_app
from analyzer.api.auth import parse_tokens
from analyzer.api.context import ApiContext
from analyzer.api.policy import ApiPolicy
from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import parse_config
from analyzer.model import Window
from analyzer.sources.protocol import FetchRequest
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet
from analyzer.tick.scheduler import Scheduler
from support import fakes
from support.configs import config_body
from support.fakes import FakeSource, SteppedClock, Traffic
from support.loopback import Client, client, serving

__all__ = [
    "MAX_BODY",
    "ON_FIRE",
    "ROOT",
    "TOKENS",
    "Api",
    "ThreadedApi",
    "api_over",
    "auth",
    "dry_run_registration",
    "error_of",
    "refused_registration",
    "registration",
    "running_api",
    "traffic",
    "wire",
]

ROOT = "root-7d1f"
"""A token with every scope."""
TOKENS = [ROOT, "act@act-2b9c", "register@reg-51aa", "config@cfg-90de", "read@read-c4e7"]
MAX_BODY = 64 * 1024
ON_FIRE = Traffic(error_rate={"baseline": 0.01, "canary": 0.5})


def auth(token: str = ROOT) -> dict[str, str]:
    """The Authorization header of a bearer token (the root one unless given)."""
    return fakes.auth(token)


def registration(**changes: Any) -> dict[str, Any]:
    """A valid registration body (DESIGN §5): three stages, live, with commit metadata, and
    top-level keys replaced."""
    stages = [
        {"weight": 5, "duration": "10m"},
        {"weight": 25, "duration": "10m"},
        {"weight": 100, "duration": "0s"},
    ]
    metadata = {"commit": "abc123", "commit_time": "2026-11-29T10:00:00Z"}
    return fakes.registration(**{"stages": stages, "mode": "live", "metadata": metadata, **changes})


def dry_run_registration(**changes: Any) -> dict[str, Any]:
    """A valid dry-run registration (no webhook) with top-level keys replaced."""
    body = fakes.registration(mode="dry-run")
    del body["webhook"]
    return body | changes


def traffic(request: FetchRequest) -> Window:
    """Healthy traffic, except for a canary whose ``deployment`` is "on-fire"."""
    fire = request.canary.labels.get("deployment") == "on-fire"
    return (ON_FIRE if fire else Traffic())(request)


async def error_of(response: Any, status: int) -> dict[str, Any]:
    """The JSON error body of a response with ``status``."""
    body: dict[str, Any] = await response.json()
    assert response.status == status, body
    assert set(body) == {"error", "field", "detail"}
    return body


def wire(
    store: SqliteStore,
    catalog: Catalog,
    clock: SteppedClock,
    telemetry: Telemetry,
    *,
    allowed_hosts: Sequence[str],
) -> tuple[Fleet, Scheduler, ApiContext]:
    """Fleet, scheduler (over :func:`traffic`) and the API's context, as Daemon.build and its
    cleanup context put them together."""
    fleet = Fleet(store, catalog, clock, telemetry, public_url="http://canaryd.test")
    scheduler = Scheduler(fleet, FakeSource(traffic), clock)
    fleet.on_change = scheduler.poke
    telemetry.watch_phases(fleet.phase_counts)
    ctx = ApiContext(
        fleet=fleet,
        telemetry=telemetry,
        tokens=parse_tokens(TOKENS),
        allowed_hosts=list(allowed_hosts),
        scrape_mode=False,
        ready=True,
    )
    return fleet, scheduler, ctx


@dataclass(slots=True)
class Api:
    """The client and what stands behind the server."""

    client: Client
    ctx: ApiContext
    fleet: Fleet
    scheduler: Scheduler
    store: SqliteStore
    catalog: Catalog
    clock: SteppedClock
    app: web.Application

    async def register(self, **changes: Any) -> dict[str, Any]:
        """Register a canary; asserts 201."""
        response = await self.client.post(
            "/api/v1/canaries", json=registration(**changes), headers=auth()
        )
        body: dict[str, Any] = await response.json()
        assert response.status == 201, body
        return body

    async def wake(self) -> None:
        """One scheduler wake-up at the current fake time."""
        now = self.clock.now()
        batch = self.scheduler.due(now)
        if batch:
            await self.scheduler.tick_batch(batch, now)


ALLOWED_HOSTS = ("deploy.internal", "127.0.0.1")


@contextlib.asynccontextmanager
async def api_over(
    store: SqliteStore,
    catalog: Catalog,
    clock: SteppedClock,
    telemetry: Telemetry,
    *,
    policy: ApiPolicy | None = None,
) -> AsyncIterator[Api]:
    """The app over ``store`` and ``catalog`` (with ``policy``, else the defaults), served on
    127.0.0.1:0 with a client, until the block ends."""
    fleet, scheduler, ctx = wire(store, catalog, clock, telemetry, allowed_hosts=ALLOWED_HOSTS)
    if policy is not None:
        ctx.policy = policy
    app = build_app(ctx, max_body_bytes=MAX_BODY)
    async with client(app) as http:
        yield Api(
            client=http,
            ctx=ctx,
            fleet=fleet,
            scheduler=scheduler,
            store=store,
            catalog=catalog,
            clock=clock,
            app=app,
        )


@contextlib.asynccontextmanager
async def running_api(
    db_file: str, *, policy: ApiPolicy | None = None, clock: SteppedClock | None = None
) -> AsyncIterator[Api]:
    """:func:`api_over` a store on ``db_file`` holding the ``test-golden`` config; the store
    is closed when the block ends (the file stays, for a restart)."""
    store = SqliteStore(db_file)
    await store.open()
    try:
        stepped = clock or SteppedClock()
        catalog = Catalog(store, stepped)
        await catalog.put(parse_config(config_body()))
        async with api_over(store, catalog, stepped, Telemetry(), policy=policy) as api:
            await api.fleet.load()
            yield api
    finally:
        await store.close()


@dataclass(slots=True)
class ThreadedApi:
    """The API app on 127.0.0.1:0, served by an event loop in a thread of its own."""

    db_path: Path
    base_url: str = ""
    clock: SteppedClock = field(default_factory=SteppedClock)
    scheduler: Scheduler | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> None:
        """Start serving; returns once the port is bound."""
        self._thread = threading.Thread(target=self._run, name="api", daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the API did not start"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def wake_at(self, at: float) -> None:
        """On the server's loop: jump the clock to ``at`` and tick whatever is due."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._wake_at(at), self._loop).result(10)

    async def _wake_at(self, at: float) -> None:
        assert self.scheduler is not None
        await self.clock.jump_to(at)
        batch = self.scheduler.due(at)
        if batch:
            await self.scheduler.tick_batch(batch, at)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # noqa: BLE001 — surfaced by start() in the test's thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        store = SqliteStore(str(self.db_path))
        await store.open()
        catalog = Catalog(store, self.clock)
        await catalog.put(parse_config(config_body()))
        _, self.scheduler, ctx = wire(
            store, catalog, self.clock, Telemetry(), allowed_hosts=["deploy.internal"]
        )
        try:
            async with serving(build_app(ctx, max_body_bytes=MAX_BODY)) as server:
                self.base_url = str(server.make_url("")).rstrip("/")
                self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
                self._ready.set()
                await self._stop.wait()
        finally:
            await store.close()


async def refused_registration(db_file: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` as a registration to a fresh API on ``db_file``; asserts 422 and that no
    canary was stored; returns the error body."""
    async with running_api(db_file) as api:
        response = await api.client.post("/api/v1/canaries", json=body, headers=auth())
        error = await error_of(response, 422)
        assert await api.store.list_canaries() == []
        return error
