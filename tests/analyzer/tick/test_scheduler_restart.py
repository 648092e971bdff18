"""A new Fleet over the same database resumes where the old one stopped: phase, stage, timers,
scored intervals and pauses survive a restart of the scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Action, Phase, Stage, Verdict
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from support.fakes import T0, FakeSource, SteppedClock
from support.scheduling import HEALTHY, INTERVAL, LONG, STAGES, STEP, Daemon, Running

Restart = Callable[[], AbstractAsyncContextManager[Daemon]]


@pytest.fixture
def restart(daemon: Daemon, db_file: str, clock: SteppedClock, telemetry: Telemetry) -> Restart:
    """Stop the test's daemon (its store closed) and, for the block, run a new one over the
    same database file, the same clock and a healthy source."""

    @asynccontextmanager
    async def restarted() -> AsyncIterator[Daemon]:
        await daemon.store.close()
        reopened = SqliteStore(db_file)
        await reopened.open()
        try:
            yield Daemon(reopened, clock, telemetry, FakeSource(HEALTHY))
        finally:
            await reopened.close()

    return restarted


class TestRestart:
    """A new Fleet over the same database resumes where the old one stopped."""

    async def test_restart_keeps_phase_stage_and_timers(
        self, daemon: Daemon, config: JudgeConfig, clock: SteppedClock, restart: Restart
    ) -> None:
        """After a restart stage, timers and scored intervals hold; the grid and deadline too."""
        canary = await daemon.register(
            config,
            "good",
            stages=(*STAGES[:1], Stage(weight=50, duration_s=2 * INTERVAL), STAGES[2]),
        )
        async with Running(daemon) as loop:
            await loop.until(T0 + INTERVAL + INTERVAL + 2 * STEP)
        before = await daemon.state(canary.id)
        assert (before.phase, before.stage_index) == (Phase.RUNNING, 1)
        assert before.stage_started_at == T0 + INTERVAL
        assert before.intervals_scored == 2
        live = daemon.fleet.canaries[canary.id]
        assert before == live

        await clock.jump_to(T0 + 2 * INTERVAL + 2 * STEP + 30)
        async with restart() as again:
            assert await again.fleet.load() == 1
            assert again.fleet.canaries[canary.id] == before
            first = await again.wake()
            assert first == 1
            tick = (await again.store.list_ticks(canary.id))[-1]
            assert tick.verdict is Verdict.RUNNING  # not re-scoring an interval already scored
            assert tick.score is None
            async with Running(again) as loop:
                await loop.until(T0 + 3 * INTERVAL)
            decisions = await again.store.list_decisions(canary.id)
            assert [(d.action, d.decided_at - T0) for d in decisions] == [
                (Action.STEP, INTERVAL),
                (Action.PROMOTE, 3 * INTERVAL),
            ]
            ends = [r.end - T0 for r in again.source.requests]
            assert all(end % STEP == 0 for end in ends)
            assert {r.start for r in again.source.requests} == {T0}

    async def test_restart_keeps_a_pause_and_its_time(
        self, daemon: Daemon, config: JudgeConfig, clock: SteppedClock, restart: Restart
    ) -> None:
        """A canary paused by hand before a restart resumes with the pause skipped."""
        canary = await daemon.register(config, "good", stages=LONG)
        await daemon.wake()
        await clock.jump_to(T0 + 100)
        await daemon.fleet.act(canary.id, Action.PAUSE, "hold on")
        async with restart() as again:
            await again.fleet.load()
            await clock.jump_to(T0 + 1000)
            resumed = await again.fleet.act(canary.id, Action.RESUME, "go on")
            assert resumed.phase is Phase.RUNNING
            assert resumed.stage_started_at == T0 + 900
