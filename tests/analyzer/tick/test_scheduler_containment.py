"""The scheduler keeps its word: one canary's broken state or one failed wake-up does not stop
the fleet, finished canaries are let go by the source, and a tick's log lines say whose they
are."""

from __future__ import annotations

import dataclasses

import pytest
import structlog
from structlog.testing import capture_logs

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Action, Mode, Phase
from support.fakes import T0, FakeSource, outage
from support.scheduling import HEALTHY, LONG, ON_FIRE, STEP, Daemon, Running, by_deployment


class ForgettingSource(FakeSource):
    """A FakeSource that records which canaries it was told to forget, and can fail at it."""

    def __init__(self, handler: object, *, fail_forget: int = 0) -> None:
        super().__init__(handler)  # type: ignore[arg-type]
        self.forgotten: list[str] = []
        self.fail_forget = fail_forget

    def forget(self, canary_id: str) -> None:
        """Record the call; the first ``fail_forget`` calls raise."""
        self.forgotten.append(canary_id)
        if self.fail_forget > 0:
            self.fail_forget -= 1
            msg = "forget failed"
            raise RuntimeError(msg)


@pytest.fixture
def source() -> ForgettingSource:
    """Healthy traffic for the ``steady`` deployment, the kill-switch's for ``fire``."""
    return ForgettingSource(by_deployment(steady=HEALTHY, other=HEALTHY, fire=ON_FIRE))


class TestContainment:
    """A failure stays with the canary it concerns; the loop outlives any one wake-up."""

    async def test_a_canary_without_its_config_does_not_stall_the_others(
        self, daemon: Daemon, config: JudgeConfig
    ) -> None:
        """A live canary whose config is not loaded is skipped and logged; the rest tick."""
        healthy = await daemon.register(config, "steady", stages=LONG)
        broken = await daemon.register(config, "other", stages=LONG)
        daemon.fleet.canaries[broken.id] = dataclasses.replace(broken, config_hash="0" * 64)
        with capture_logs() as logs:
            async with Running(daemon) as loop:
                await loop.until(T0 + 3 * STEP)
        ticked = await daemon.store.list_ticks(healthy.id)
        assert [t.at - T0 for t in ticked] == [0, 60, 120, 180]
        assert await daemon.store.list_ticks(broken.id) == []
        missing = [e for e in logs if e["event"] == "tick.config_missing"]
        assert missing
        assert {e["canary_id"] for e in missing} == {broken.id}

    async def test_a_failed_wake_up_is_logged_and_the_loop_carries_on(
        self, daemon: Daemon, config: JudgeConfig, source: ForgettingSource
    ) -> None:
        """Finding what is due fails once (here: letting a finished canary go); the next
        wake-ups tick the remaining canary on its grid as before."""
        source.fail_forget = 1
        keep = await daemon.register(config, "steady", stages=LONG)
        gone = await daemon.register(config, "other", stages=LONG)
        with capture_logs() as logs:
            async with Running(daemon) as loop:
                await loop.until(T0 + STEP)
                await daemon.fleet.act(gone.id, Action.ABORT, "test abort")
                await loop.until(T0 + 4 * STEP)
        assert [e["event"] for e in logs].count("scheduler.wakeup_failed") == 1
        ticked = await daemon.store.list_ticks(keep.id)
        assert [t.at - T0 for t in ticked] == [0, 60, 120, 180, 240]
        assert (await daemon.state(keep.id)).phase is Phase.RUNNING


class TestForget:
    """The source is told to let go of every canary that finished, however it finished."""

    async def test_finished_canaries_are_forgotten_and_live_ones_kept(
        self, daemon: Daemon, config: JudgeConfig, source: ForgettingSource
    ) -> None:
        """Aborted by an action and rolled back by a decision: both forgotten; a running
        canary is not."""
        aborted = await daemon.register(config, "steady", stages=LONG)
        rolled = await daemon.register(config, "fire", stages=LONG, mode=Mode.DRY_RUN)
        running = await daemon.register(config, "other", stages=LONG)
        async with Running(daemon) as loop:
            await loop.until(T0 + STEP)
            await daemon.fleet.act(aborted.id, Action.ABORT, "test abort")
            await loop.until(T0 + 3 * STEP)
        assert (await daemon.state(rolled.id)).phase is Phase.ROLLED_BACK
        assert set(source.forgotten) == {aborted.id, rolled.id}
        assert running.id not in source.forgotten
        assert source.forgotten.count(aborted.id) == 1


class TestLogContext:
    """Lines logged during a canary's tick or action carry its id and service (contextvars)."""

    async def test_fetch_and_decision_lines_carry_the_canary(
        self, daemon: Daemon, config: JudgeConfig, source: ForgettingSource
    ) -> None:
        """A failed fetch and a decision are logged with canary_id and service, though the
        call sites name neither; nothing stays bound after the tick."""
        source.handler = outage()
        canary = await daemon.register(config, "steady", stages=LONG)
        merge = [structlog.contextvars.merge_contextvars]
        with capture_logs(processors=merge) as logs:
            async with Running(daemon) as loop:
                await loop.until(T0 + STEP)
            await daemon.fleet.act(canary.id, Action.ABORT, "test abort")
        events = {e["event"]: e for e in logs}
        for name in ("tick.completed", "decision.made"):
            assert events[name]["canary_id"] == canary.id, name
            assert events[name]["service"] == "checkout", name
        assert structlog.contextvars.get_contextvars() == {}
