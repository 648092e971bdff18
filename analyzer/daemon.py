"""``canaryd serve``: wire the store, source, fleet, scheduler, webhooks and API, and run them.

Start-up: open the store (migrations), load the judge configs from ``CANARYD_CONFIG_DIR``,
resume the stored canaries, start the scheduler and the webhook dispatcher, then serve the API
and report ready. Shutdown follows uvicorn's order: stop accepting (registrations get 503, the
listener closes), let the in-flight ticks and deliveries finish within the grace period, then
cancel what is left and close the session and the store. A second SIGTERM forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

import aiohttp
import structlog
from aiohttp import web

from analyzer.api.app import build_app
from analyzer.api.auth import parse_tokens
from analyzer.api.context import ApiContext
from analyzer.api.policy import ApiPolicy
from analyzer.clock import Clock, SystemClock
from analyzer.configs.catalog import Catalog
from analyzer.errors import CanarydError
from analyzer.net.connector import outbound_session
from analyzer.net.policy import AllowList
from analyzer.settings import Settings
from analyzer.sources.prometheus import PrometheusSource
from analyzer.sources.protocol import MetricSource
from analyzer.sources.scrape import ScrapeSource
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet
from analyzer.tick.scheduler import Scheduler
from analyzer.webhooks.dispatcher import WebhookDispatcher

__all__ = ["Daemon"]

log = structlog.get_logger("canaryd.daemon")


@dataclass(slots=True)
class Daemon:
    """One canaryd process."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    telemetry: Telemetry = field(default_factory=Telemetry)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    ctx: ApiContext | None = None
    dispatcher: WebhookDispatcher | None = None
    """The webhook sender while the components run (its ``parked`` signal steers a fake
    clock in tests)."""

    def _source(self, session: aiohttp.ClientSession) -> MetricSource:
        s = self.settings
        if s.prometheus_url:
            return PrometheusSource(
                s.prometheus_url,
                session,
                timeout_s=s.source_timeout_s,
                max_concurrency=s.max_concurrency,
            )
        return ScrapeSource(
            session,
            timeout_s=s.source_timeout_s,
            max_concurrency=s.max_concurrency,
            max_bytes=s.scrape_max_bytes,
            allowed_hosts=self._allow_lists()[0],
            clock=self.clock,
        )

    def _allow_lists(self) -> tuple[AllowList, AllowList]:
        """The scrape and webhook allow-lists; a bad entry names its setting."""
        s = self.settings
        return (
            AllowList.of(s.scrape_allowed_hosts, setting="CANARYD_SCRAPE_ALLOWED_HOSTS"),
            AllowList.of(s.webhook_allowed_hosts, setting="CANARYD_WEBHOOK_ALLOWED_HOSTS"),
        )

    def _sessions(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        """The source's session and the webhooks'. Scrapes and webhooks connect only where
        their allow-lists admit, checked again on the addresses names resolve to; the
        operator's own Prometheus is not behind an allow-list."""
        s = self.settings
        timeout = aiohttp.ClientTimeout(total=s.source_timeout_s)
        scrape, hooks = self._allow_lists()
        if s.prometheus_url:
            source = aiohttp.ClientSession(timeout=timeout)
        else:
            source = outbound_session(scrape, what="scrape", timeout=timeout)
        return source, outbound_session(hooks, what="webhook", timeout=timeout)

    def _public_url(self) -> str:
        s = self.settings
        return s.public_url or f"http://{s.listen}"

    async def _components(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: everything with a lifetime, started before serving, stopped after."""
        s = self.settings
        store = SqliteStore(s.sqlite_path)
        await store.open()
        session, hooks = self._sessions()
        try:  # a failed start-up (a bad config file, a store that cannot resume) undoes itself
            source = self._source(session)
            catalog = Catalog(store, self.clock)
            loaded = await catalog.load_dir(s.config_dir)
            fleet = Fleet(store, catalog, self.clock, self.telemetry, public_url=self._public_url())
            scheduler = Scheduler(
                fleet,
                source,
                self.clock,
                max_concurrency=s.max_concurrency,
                # each query has the source's timeout; a whole fetch (queued queries, parsing)
                # gets twice that and a second more before its canary's tick goes on without it
                fetch_timeout_s=2 * s.source_timeout_s + 1.0,
            )
            fleet.on_change = scheduler.poke
            resumed = await fleet.load()
        except BaseException:
            await session.close()
            await hooks.close()
            await store.close()
            raise
        self.telemetry.watch_phases(fleet.phase_counts)
        dispatcher = WebhookDispatcher(
            store,
            hooks,
            self.clock,
            secret=s.webhook_secret.get_secret_value(),
            allowed_hosts=s.webhook_allowed_hosts,
            timeout_s=s.webhook_timeout_s,
            max_concurrency=s.webhook_max_concurrency,
            per_destination=s.webhook_concurrency,
            max_backoff_s=s.webhook_max_backoff_s,
            give_up_after_s=s.webhook_give_up_s,
            rng=random.Random(),  # noqa: S311 — backoff jitter, not cryptography
            on_outcome=self._count_delivery,
        )
        self.dispatcher = dispatcher
        ctx = app[_CTX_HOLDER]
        ctx.fleet = fleet
        # The scheduler and the webhook sender stop at the first SIGTERM (``stopping``), while
        # the listener drains in-flight requests: one grace period for both, no new ticks.
        stop = self.stopping
        tasks = [
            asyncio.create_task(scheduler.run(stop), name="scheduler"),
            asyncio.create_task(dispatcher.run(stop), name="webhooks"),
        ]
        ctx.ready = True
        log.info(
            "daemon.started",
            listen=s.listen,
            configs=loaded,
            resumed=resumed,
            source="prometheus" if s.prometheus_url else "scrape",
        )
        try:
            yield
        finally:
            fleet.accepting = False
            stop.set()
            await _finish(tasks, s.shutdown_grace_s)
            self.dispatcher = None
            await source.close()
            await session.close()
            await hooks.close()
            await store.close()
            log.info("daemon.stopped")

    def _count_delivery(self, outcome: str) -> None:
        self.telemetry.deliveries.labels(outcome=outcome).inc()

    def build(self) -> web.Application:
        """The application with its components attached (started by the runner)."""
        s = self.settings
        self._allow_lists()  # a bad allow-list entry stops start-up, naming its setting
        tokens = parse_tokens([t.get_secret_value() for t in s.api_tokens])
        placeholder = _Unstarted()
        self.ctx = ApiContext(
            fleet=placeholder,  # type: ignore[arg-type]
            telemetry=self.telemetry,
            tokens=tokens,
            allowed_hosts=s.webhook_allowed_hosts,
            scrape_mode=not s.prometheus_url,
            policy=ApiPolicy.of(s),
        )
        app = build_app(self.ctx, max_body_bytes=s.max_body_bytes)
        app[_CTX_HOLDER] = self.ctx
        app.cleanup_ctx.append(self._components)
        return app

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        # First of all: a SIGTERM while the store opens and the fleet resumes is graceful too.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        app = self.build()
        # In-flight requests get the grace period too, not aiohttp's default of 60 s: a client
        # that stalls mid-request must not hold the shutdown (and the ticks) past the grace.
        grace_s = self.settings.shutdown_grace_s
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=grace_s)
        try:
            await runner.setup()  # runs _components' start-up: store, configs, fleet
        except CanarydError as exc:  # a corrupt database, an unreadable config: one line
            log.error("daemon.start_failed", error=str(exc))
            await runner.cleanup()
            return 1
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        await site.start()
        await self.stopping.wait()
        log.info("daemon.stopping", grace_s=self.settings.shutdown_grace_s)
        if self.ctx is not None:
            self.ctx.ready = False
            with contextlib.suppress(AttributeError):
                self.ctx.fleet.accepting = False
        await runner.cleanup()
        return 0

    def _on_signal(self) -> None:
        if self.stopping.is_set():
            log.warning("daemon.forced_exit")
            os._exit(1)
        self.stopping.set()


class _Unstarted:
    """Stands in for the fleet until the components have started (readyz says not ready)."""

    accepting = False
    canaries: ClassVar[dict[str, object]] = {}


_CTX_HOLDER = web.AppKey("ctx_holder", ApiContext)


async def _finish(tasks: list[asyncio.Task[None]], grace_s: float) -> None:
    """Let tasks end by themselves within the grace period, then cancel the rest."""
    _done, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception):
            log.error("daemon.task_failed", task=task.get_name(), error=repr(result))
