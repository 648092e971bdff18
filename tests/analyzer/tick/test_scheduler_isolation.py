"""One canary cannot stall another: each tick proceeds as soon as its own fetch is done.

A fetch that hangs (a target that never answers, a Prometheus stuck on one query) holds only
its own canary's tick; the others keep ticking — their kill-switches included — on their grid,
and the hung canary gets no second tick until its first one ends. A hard deadline per fetch
ends a hang the source's own timeouts missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.errors import InvalidInput
from analyzer.model import Phase, Window
from analyzer.sources.protocol import FetchRequest
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.scheduler import Scheduler
from support.dispatching import parked
from support.fakes import T0, FakeSource, SteppedClock
from support.scheduling import HEALTHY, LONG, ON_FIRE, STEP, Daemon, by_deployment


async def settled(condition: Callable[[], Awaitable[bool]], what: str, polls: int = 500) -> None:
    """Wait until ``condition()`` holds, re-checked every 10 ms of real time; bounded."""
    for _ in range(polls):
        if await condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"{what} not reached after {polls} polls")


class Hang:
    """A handler that never answers until released, counting the fetches it holds."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = 0

    async def __call__(self, request: FetchRequest) -> Window:
        self.held += 1
        await self.release.wait()
        return HEALTHY(request)


class TestIsolation:
    """Scheduler.run ticks every canary on its own."""

    async def test_a_hung_fetch_does_not_delay_another_canary(
        self, store: SqliteStore, clock: SteppedClock, telemetry: Telemetry, config: JudgeConfig
    ) -> None:
        """While one canary's fetch hangs, another canary is ticked at three grid slots in a
        row and its kill-switch rolls it back; the hung canary is fetched once, not again."""
        hang = Hang()
        source = FakeSource(by_deployment(stuck=hang, steady=HEALTHY, burning=ON_FIRE))
        daemon = Daemon(store, clock, telemetry, source)
        stuck = await daemon.register(config, "stuck", stages=LONG)
        steady = await daemon.register(config, "steady", stages=LONG)
        burning = await daemon.register(config, "burning", stages=LONG)
        stop = asyncio.Event()
        loop = asyncio.create_task(daemon.scheduler.run(stop))
        try:
            await parked(daemon.scheduler, clock)  # all three started analysis at T0
            for k in range(1, 4):

                async def ticked(k: int = k) -> bool:
                    return len(await store.list_ticks(steady.id)) == k + 1

                await clock.jump_to(T0 + k * STEP)
                await settled(ticked, f"steady's tick at slot {k}")
            stored = await daemon.state(burning.id)
            assert stored.phase is Phase.ROLLED_BACK
            assert "kill-switch" in stored.last_reason
            assert hang.held == 1
            assert daemon.scheduler.in_flight == 1
            assert [t.at - T0 for t in await store.list_ticks(steady.id)] == [0, 60, 120, 180]
            assert len(await store.list_ticks(stuck.id)) == 1  # the start, before the hang
        finally:
            hang.release.set()
            stop.set()
            async with asyncio.timeout(10):
                await loop
        assert daemon.scheduler.in_flight == 0
        assert len(await store.list_ticks(stuck.id)) == 2  # the held tick, recorded at the end

    async def test_the_fetch_deadline_ends_a_hang(
        self, store: SqliteStore, clock: SteppedClock, telemetry: Telemetry, config: JudgeConfig
    ) -> None:
        """A fetch past ``fetch_timeout_s`` ends as no data naming the deadline; the canary
        holds (on_no_data: hold) and is ticked again at its next slot."""
        hang = Hang()
        daemon = Daemon(store, clock, telemetry, FakeSource(hang))
        daemon.scheduler = Scheduler(daemon.fleet, daemon.source, clock, fetch_timeout_s=0.05)
        canary = await daemon.register(config, "stuck", stages=LONG)
        await daemon.wake()  # analysis starts: nothing fetched
        await clock.jump_to(T0 + STEP)
        await daemon.wake()
        await clock.jump_to(T0 + 2 * STEP)
        await daemon.wake()
        ticks = await store.list_ticks(canary.id)
        assert [t.at - T0 for t in ticks] == [0, 60, 120]
        assert hang.held == 2
        for tick in ticks[1:]:
            assert tick.reason == "no data, holding: fetch failed: no answer within 0.05s"
        assert (await daemon.state(canary.id)).phase is Phase.RUNNING

    @pytest.mark.parametrize(
        ("field", "kwargs"),
        [("max_concurrency", {"max_concurrency": 0}), ("fetch_timeout_s", {"fetch_timeout_s": 0})],
    )
    def test_arguments_are_checked(
        self, daemon_parts: Daemon, field: str, kwargs: dict[str, float]
    ) -> None:
        """A limit or deadline that is not positive is InvalidInput naming it."""
        with pytest.raises(InvalidInput) as caught:
            Scheduler(daemon_parts.fleet, daemon_parts.source, daemon_parts.clock, **kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field


@pytest.fixture
def daemon_parts(store: SqliteStore, clock: SteppedClock, telemetry: Telemetry) -> Daemon:
    """A fleet and a source to build schedulers from."""
    return Daemon(store, clock, telemetry, FakeSource(HEALTHY))
