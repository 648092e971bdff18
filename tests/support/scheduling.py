"""The scheduler's side of a daemon for tests: fleet, scheduler and source over one store, and
``Scheduler.run`` as a task moved along by jumping a fake clock while it sleeps."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Canary, Mode, Side, Stage, Window
from analyzer.sources.protocol import FetchRequest, MetricSource
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet, Registration
from analyzer.tick.scheduler import Scheduler
from support.dispatching import parked
from support.fakes import Handler, SteppedClock, Traffic

__all__ = [
    "HEALTHY",
    "INTERVAL",
    "LONG",
    "ON_FIRE",
    "PUBLIC_URL",
    "REGRESSED",
    "STAGES",
    "STEP",
    "Daemon",
    "Running",
    "by_deployment",
]

STEP, INTERVAL = 60.0, 300.0
PUBLIC_URL = "http://canaryd.test:8080"
STAGES = (
    Stage(weight=10, duration_s=INTERVAL),
    Stage(weight=50, duration_s=INTERVAL),
    Stage(weight=100, duration_s=0),
)
LONG = (Stage(weight=10, duration_s=3600),)

HEALTHY = Traffic()
REGRESSED = Traffic(error_rate={"baseline": 0.01, "canary": 0.05})
ON_FIRE = Traffic(error_rate={"baseline": 0.01, "canary": 0.5})
"""Over the kill-switch's 20 % line on every poll."""


def by_deployment(**traffic: Handler) -> Handler:
    """Answer each canary from the traffic of its ``deployment`` label."""

    def handle(request: FetchRequest) -> Window | Any:
        return traffic[request.canary.labels["deployment"]](request)

    return handle


class Daemon:
    """The scheduler's side of a daemon: fleet, scheduler and source over one store."""

    def __init__(
        self, store: SqliteStore, clock: SteppedClock, telemetry: Telemetry, source: MetricSource
    ) -> None:
        self.store = store
        self.clock = clock
        self.telemetry = telemetry
        self.source = source
        self.catalog = Catalog(store, clock)
        self.changes: list[str] = []
        self.fleet = Fleet(
            store,
            self.catalog,
            clock,
            telemetry,
            public_url=PUBLIC_URL,
            on_change=lambda: self.changes.append("change"),
        )
        self.scheduler = Scheduler(self.fleet, source, clock)

    async def register(
        self,
        config: JudgeConfig,
        deployment: str,
        *,
        stages: tuple[Stage, ...] = STAGES,
        webhook_url: str | None = None,
        mode: Mode = Mode.LIVE,
        targets: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    ) -> Canary:
        """Register a canary whose canary side is ``deployment``; ``targets`` are the scrape
        targets of the baseline and the canary (for a scrape source)."""
        version = await self.catalog.put(config)
        return await self.fleet.register(
            Registration(
                name=f"checkout-{deployment}",
                service="checkout",
                config_hash=version.hash,
                config_name=config.name,
                baseline=Side(labels={"deployment": "baseline"}, targets=targets[0]),
                canary=Side(labels={"deployment": deployment}, targets=targets[1]),
                stages=stages,
                webhook_url=webhook_url,
                mode=mode,
            )
        )

    async def wake(self) -> int:
        """One wake-up of the loop, by hand: tick whatever is due now; returns how many."""
        now = self.clock.now()
        batch = self.scheduler.due(now)
        if batch:
            await self.scheduler.tick_batch(batch, now)
        return len(batch)

    async def state(self, canary_id: str) -> Canary:
        """The canary as stored."""
        stored = await self.store.get_canary(canary_id)
        assert stored is not None
        return stored


class Running:
    """``Scheduler.run`` as a task, moved along by jumping the fake clock while it is parked
    (asleep with no tick in flight)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.deadline = 0.0

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.daemon.scheduler.run(self.stop))
        self.deadline = await parked(self.daemon.scheduler, self.daemon.clock)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop.set()
        assert self.task is not None
        async with asyncio.timeout(10):
            await self.task

    async def jump(self, at: float) -> None:
        """Jump straight to ``at`` (a late wake-up if slots were skipped) and let it settle."""
        await self.daemon.clock.jump_to(at)
        self.deadline = await parked(self.daemon.scheduler, self.daemon.clock)

    async def until(self, at: float, *, limit: int = 5000) -> None:
        """Wake at every deadline up to ``at``, as a real clock would."""
        for _ in range(limit):
            if self.deadline > at:
                return
            await self.jump(self.deadline)
        msg = f"the loop did not reach {at} in {limit} wake-ups"
        raise AssertionError(msg)
