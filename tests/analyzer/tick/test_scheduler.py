"""The scheduler's hot loop with a fake clock, a recording FakeSource and a real SQLite store:
ticks on the step grid, and each tick's judging off the loop. (Decisions and races:
``test_scheduler_decisions.py``; restarts: ``test_scheduler_restart.py``.)"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Phase, Window
from analyzer.sources.protocol import FetchRequest
from analyzer.telemetry import Telemetry
from support.fakes import T0, FakeSource, MakeConfig, SteppedClock
from support.scheduling import HEALTHY, LONG, STEP, Daemon, Running


class TestGrid:
    """Ticks land on the step grid; late wake-ups do not shift it."""

    async def test_ticks_on_the_grid_without_drift(
        self, daemon: Daemon, config: JudgeConfig, source: FakeSource, telemetry: Telemetry
    ) -> None:
        """A wake-up 7 s late ticks once; the next tick is back on the grid, not 7 s later."""
        canary = await daemon.register(config, "steady", stages=LONG)
        async with Running(daemon) as loop:
            await loop.until(T0 + 60)
            await loop.jump(T0 + 127)
            await loop.until(T0 + 300)
        ticks = await daemon.store.list_ticks(canary.id)
        assert [t.at - T0 for t in ticks] == [0, 60, 127, 180, 240, 300]
        assert [t.seq for t in ticks] == list(range(1, 7))
        assert ticks[0].reason == "analysis started"
        # every window is on the grid: from the analysis start to the last step ≤ now
        assert [r.end - T0 for r in source.requests] == [60, 120, 180, 240, 300]
        assert {r.start for r in source.requests} == {T0}
        assert {r.step_s for r in source.requests} == {STEP}
        lag = telemetry.registry.get_sample_value("canaryd_tick_lag_seconds_sum")
        assert lag == pytest.approx(7.0)

    async def test_a_long_stall_ticks_once_then_resumes_the_grid(
        self, daemon: Daemon, config: JudgeConfig
    ) -> None:
        """Slots missed during a stall are skipped, not piled up."""
        canary = await daemon.register(config, "steady", stages=LONG)
        async with Running(daemon) as loop:
            await loop.until(T0 + 120)
            await loop.jump(T0 + 1000)
            await loop.until(T0 + 1080)
        ticks = await daemon.store.list_ticks(canary.id)
        assert [t.at - T0 for t in ticks] == [0, 60, 120, 1000, 1020, 1080]

    async def test_warmup_ends_on_time(self, daemon: Daemon, make_config: MakeConfig) -> None:
        """A 2 m warm-up: judging starts at registration + 2 m and anchors the grid there."""
        canary = await daemon.register(make_config(warmup="2m"), "steady", stages=LONG)
        async with Running(daemon) as loop:
            await loop.until(T0 + 240)
        ticks = await daemon.store.list_ticks(canary.id)
        assert [t.at - T0 for t in ticks] == [0, 120, 180, 240]
        assert [t.phase for t in ticks] == [Phase.WARMUP, *[Phase.RUNNING] * 3]
        stored = await daemon.state(canary.id)
        assert stored.analysis_started_at == T0 + 120


class TestBatch:
    """One wake-up ticks every due canary, each on its own: fetch, judge off the loop, record."""

    async def test_each_tick_judges_off_the_loop_then_records(
        self, daemon: Daemon, config: JudgeConfig, source: FakeSource, clock: SteppedClock
    ) -> None:
        """Per canary: its fetch, then its judging in a worker thread, then its record; no
        judging on the event loop's thread."""
        events: list[tuple[str, str, int]] = []

        class Watched(dict[str, Any]):
            """The window's metrics, noting when (and on which thread) judging reads them."""

            def __init__(self, canary: str, metrics: dict[str, Any]) -> None:
                super().__init__(metrics)
                self.canary = canary

            def items(self) -> Any:
                events.append(("judge", self.canary, threading.get_ident()))
                return super().items()

        def handle(request: FetchRequest) -> Window:
            events.append(("fetch", request.canary_id, threading.get_ident()))
            window = HEALTHY(request)
            return Window(
                start=window.start,
                end=window.end,
                step_s=window.step_s,
                metrics=Watched(request.canary_id, dict(window.metrics)),
            )

        source.handler = handle
        ids = [(await daemon.register(config, name)).id for name in ("a", "b", "c")]
        assert await daemon.wake() == 3  # warm-up over: no fetch, nothing judged
        assert events == []
        await clock.jump_to(T0 + STEP)
        commit = daemon.fleet.commit

        async def noted(current: Any, *args: Any) -> Any:
            events.append(("record", current.id, threading.get_ident()))
            return await commit(current, *args)

        daemon.fleet.commit = noted  # type: ignore[method-assign]
        assert await daemon.wake() == 3
        loop_thread = threading.get_ident()
        for canary_id in ids:
            own = [(kind, ident) for kind, cid, ident in events if cid == canary_id]
            kinds = [kind for kind, _ in own]
            assert kinds[0] == "fetch"
            assert kinds[-1] == "record"
            assert "judge" in kinds
            judged = {ident for kind, ident in own if kind == "judge"}
            assert loop_thread not in judged
            assert (await daemon.state(canary_id)).tick_seq == 2
