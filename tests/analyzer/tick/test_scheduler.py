"""The scheduler's hot loop with a fake clock, a recording FakeSource and a real SQLite store:
the step grid, batched judging, decisions with their outbox rows, holds, races and restarts."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Action, DeliveryState, Mode, Phase, Stage, Verdict, Window
from analyzer.sources.protocol import FetchRequest
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.webhooks.dispatcher import WebhookDispatcher
from support.fakes import T0, FakeSource, MakeConfig, SteppedClock, Traffic, outage
from support.loopback import WEBHOOK_SECRET, WebhookReceiver
from support.scheduling import (
    INTERVAL,
    LONG,
    PUBLIC_URL,
    STAGES,
    STEP,
    Daemon,
    Running,
    by_deployment,
)

HEALTHY = Traffic()
REGRESSED = Traffic(error_rate={"baseline": 0.01, "canary": 0.05})
ON_FIRE = Traffic(error_rate={"baseline": 0.01, "canary": 0.5})
"""Over the kill-switch's 20 % line on every poll."""


@pytest.fixture
def source() -> FakeSource:
    """Healthy traffic for every canary unless a test swaps the handler."""
    return FakeSource(HEALTHY)


@pytest.fixture
def daemon(
    store: SqliteStore, clock: SteppedClock, telemetry: Telemetry, source: FakeSource
) -> Daemon:
    """Fleet and scheduler over the test's store, clock and source."""
    return Daemon(store, clock, telemetry, source)


@pytest.fixture
def config(make_config: MakeConfig) -> JudgeConfig:
    """step 60 s, interval 5 m, no warm-up, hold on no data, pause when inconclusive."""
    return make_config()


@asynccontextmanager
async def delivering(
    store: SqliteStore, clock: SteppedClock, receiver: WebhookReceiver
) -> AsyncIterator[Callable[[], Any]]:
    """A dispatcher that sends the store's due deliveries to the receiver, one call at a time."""
    async with aiohttp.ClientSession() as session:
        dispatcher = WebhookDispatcher(
            store,
            session,
            clock,
            secret=WEBHOOK_SECRET,
            allowed_hosts=[receiver.host],
            rng=random.Random(0),
        )

        async def drain() -> None:
            for _ in range(20):
                due = await store.due_deliveries(clock.now())
                if not due:
                    return
                for delivery in due:
                    await dispatcher.deliver(delivery)
            msg = "the outbox did not drain"
            raise AssertionError(msg)

        yield drain


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
    """One wake-up fetches every due canary, judges them in one batch, then records each."""

    async def test_judging_runs_once_per_wake_up(
        self, daemon: Daemon, config: JudgeConfig, source: FakeSource, clock: SteppedClock
    ) -> None:
        """One wake-up: every fetch, then all judging off the loop thread, then each record."""
        events: list[tuple[str, int]] = []

        class Watched(dict[str, Any]):
            """The window's metrics, noting when (and on which thread) judging reads them."""

            def items(self) -> Any:
                events.append(("judge", threading.get_ident()))
                return super().items()

        def handle(request: FetchRequest) -> Window:
            events.append(("fetch", threading.get_ident()))
            window = HEALTHY(request)
            return Window(
                start=window.start,
                end=window.end,
                step_s=window.step_s,
                metrics=Watched(window.metrics),
            )

        source.handler = handle
        ids = [(await daemon.register(config, name)).id for name in ("a", "b", "c")]
        assert await daemon.wake() == 3  # warm-up over: no fetch, nothing judged
        assert events == []
        await clock.jump_to(T0 + STEP)
        daemon.fleet.on_change = lambda: events.append(("record", threading.get_ident()))
        assert await daemon.wake() == 3
        kinds = [kind for kind, _ in events]
        assert kinds == ["fetch"] * 3 + ["judge"] * 3 + ["record"] * 3
        loop_thread = threading.get_ident()
        judge_threads = {ident for kind, ident in events if kind == "judge"}
        assert len(judge_threads) == 1
        assert loop_thread not in judge_threads
        for canary_id in ids:
            assert (await daemon.state(canary_id)).tick_seq == 2


class TestDecisions:
    """Decisions through the loop, with their ticks and outbox rows in the store."""

    async def test_bad_rolled_back_good_promoted_through_stages(
        self,
        daemon: Daemon,
        config: JudgeConfig,
        source: FakeSource,
        webhook_receiver: WebhookReceiver,
        clock: SteppedClock,
    ) -> None:
        """Regressed: rolled back; healthy: stepped to 50 %, then promoted; outbox delivered."""
        # Only an instant stage is left after stage 1, so passing it promotes; each decision has
        # one outbox row, delivered signed and in decision order.
        source.handler = by_deployment(good=HEALTHY, bad=REGRESSED)
        url = webhook_receiver.url
        good = await daemon.register(config, "good", webhook_url=url)
        bad = await daemon.register(config, "bad", webhook_url=url)
        async with Running(daemon) as loop:
            await loop.until(T0 + 2 * INTERVAL + 3 * STEP)

        good_decisions = await daemon.store.list_decisions(good.id)
        assert [(d.seq, d.action, d.stage_index, d.weight) for d in good_decisions] == [
            (1, Action.STEP, 1, 50.0),
            (2, Action.PROMOTE, 1, 100.0),
        ]
        assert [d.decided_at - T0 for d in good_decisions] == [INTERVAL, 2 * INTERVAL]
        bad_decisions = await daemon.store.list_decisions(bad.id)
        assert [(d.seq, d.action, d.weight) for d in bad_decisions] == [(1, Action.ROLLBACK, 0)]
        assert bad_decisions[0].decided_at == T0 + INTERVAL
        assert "critical metric error_rate failed" in bad_decisions[0].reason

        assert (await daemon.state(good.id)).phase is Phase.PROMOTED
        assert (await daemon.state(bad.id)).phase is Phase.ROLLED_BACK
        assert daemon.fleet.canaries == {}
        # finished canaries are not ticked again
        assert (await daemon.store.list_ticks(good.id))[-1].at == T0 + 2 * INTERVAL
        assert (await daemon.store.list_ticks(bad.id))[-1].at == T0 + INTERVAL

        outbox = {cid: await daemon.store.list_deliveries(cid) for cid in (good.id, bad.id)}
        assert [(d.delivery_id, d.event, d.state) for d in outbox[good.id]] == [
            (f"{good.id}:1", "step", DeliveryState.PENDING),
            (f"{good.id}:2", "promote", DeliveryState.PENDING),
        ]
        assert [(d.delivery_id, d.event) for d in outbox[bad.id]] == [(f"{bad.id}:1", "rollback")]

        async with delivering(daemon.store, clock, webhook_receiver) as drain:
            await drain()
        assert all(r.signed for r in webhook_receiver.attempts)
        got = [
            (r.headers["X-Canaryd-Delivery"], r.headers["X-Canaryd-Event"])
            for r in webhook_receiver.attempts
        ]
        assert sorted(got) == sorted(
            [(f"{good.id}:1", "step"), (f"{good.id}:2", "promote"), (f"{bad.id}:1", "rollback")]
        )
        good_ids = [i for i, _ in got if i.startswith(good.id)]
        assert good_ids == [f"{good.id}:1", f"{good.id}:2"]
        step_body = json.loads(webhook_receiver.attempts[got.index((f"{good.id}:1", "step"))].body)
        assert step_body["weight"] == 50
        assert step_body["stage"] == 1
        assert step_body["evidence_url"] == f"{PUBLIC_URL}/api/v1/canaries/{good.id}"
        delivered = await daemon.store.list_deliveries(good.id)
        assert {d.state for d in delivered} == {DeliveryState.DELIVERED}

    async def test_kill_switch_rolls_back_between_intervals(
        self, daemon: Daemon, config: JudgeConfig, source: FakeSource
    ) -> None:
        """Over the kill-switch line: rolled back at the first poll, not at the interval."""
        source.handler = ON_FIRE
        canary = await daemon.register(config, "fire", webhook_url=None, mode=Mode.DRY_RUN)
        async with Running(daemon) as loop:
            await loop.until(T0 + INTERVAL)
        decisions = await daemon.store.list_decisions(canary.id)
        assert [(d.action, d.decided_at - T0) for d in decisions] == [(Action.ROLLBACK, STEP)]
        assert decisions[0].reason.startswith("kill-switch: error_rate")
        assert await daemon.store.list_deliveries(canary.id) == []  # dry-run: no webhook

    async def test_source_errors_hold_without_rollback(
        self, daemon: Daemon, config: JudgeConfig, source: FakeSource, telemetry: Telemetry
    ) -> None:
        """Source down: verdict none and no decision; at the stage deadline a pause, no rollback."""
        source.handler = outage("error_rate: Prometheus unavailable: connection refused")
        canary = await daemon.register(config, "dark", stages=(Stage(weight=10, duration_s=600),))
        async with Running(daemon) as loop:
            await loop.until(T0 + 540)
            held = await daemon.state(canary.id)
            assert held.phase is Phase.RUNNING
            assert await daemon.store.list_decisions(canary.id) == []
            await loop.until(T0 + 600)
        ticks = await daemon.store.list_ticks(canary.id)
        assert {t.verdict for t in ticks[1:-1]} == {Verdict.NONE}
        assert all("no data, holding" in t.reason for t in ticks[1:-1])
        assert "connection refused" in ticks[1].reason
        assert (
            ticks[1].results["no_data"] == "error_rate: Prometheus unavailable: connection refused"
        )
        decisions = await daemon.store.list_decisions(canary.id)
        assert [d.action for d in decisions] == [Action.PAUSE]
        assert (await daemon.state(canary.id)).phase is Phase.PAUSED
        assert await daemon.store.list_deliveries(canary.id) == []
        errors = telemetry.registry.get_sample_value(
            "canaryd_source_errors_total", {"metric": "error_rate"}
        )
        assert errors == len(ticks) - 1
        nones = telemetry.registry.get_sample_value("canaryd_ticks_total", {"verdict": "none"})
        assert nones == len(ticks) - 2


class TestRaces:
    """A manual action that lands while a tick is in flight wins; the tick is dropped."""

    async def test_action_during_a_tick_is_not_double_decided(
        self,
        daemon: Daemon,
        config: JudgeConfig,
        source: FakeSource,
        clock: SteppedClock,
        webhook_receiver: WebhookReceiver,
    ) -> None:
        """A promote during the fetch stands; the tick's rollback (kill-switch) is discarded."""
        canary = await daemon.register(config, "fire", webhook_url=webhook_receiver.url)

        async def promote_meanwhile(request: FetchRequest) -> Window:
            await daemon.fleet.act(canary.id, Action.PROMOTE, "release manager says ship")
            return ON_FIRE(request)

        source.handler = promote_meanwhile
        await daemon.wake()
        await clock.jump_to(T0 + STEP)
        await daemon.wake()
        decisions = await daemon.store.list_decisions(canary.id)
        assert [(d.seq, d.action) for d in decisions] == [(1, Action.PROMOTE)]
        assert [d.event for d in await daemon.store.list_deliveries(canary.id)] == ["promote"]
        stored = await daemon.state(canary.id)
        assert (stored.phase, stored.decision_seq, stored.tick_seq) == (Phase.PROMOTED, 1, 1)
        assert len(await daemon.store.list_ticks(canary.id)) == 1
        await clock.jump_to(T0 + 2 * STEP)
        assert await daemon.wake() == 0

    async def test_pause_during_a_tick_then_resume(
        self, daemon: Daemon, config: JudgeConfig, source: FakeSource, clock: SteppedClock
    ) -> None:
        """A pause during the fetch drops the tick; after resume the canary ticks again."""
        canary = await daemon.register(config, "fire", mode=Mode.DRY_RUN)
        paused_once: list[bool] = []

        async def pause_meanwhile(request: FetchRequest) -> Window:
            if not paused_once:
                paused_once.append(True)
                await daemon.fleet.act(canary.id, Action.PAUSE, "looking at a dashboard")
            return HEALTHY(request)

        source.handler = pause_meanwhile
        await daemon.wake()
        await clock.jump_to(T0 + STEP)
        await daemon.wake()
        assert (await daemon.state(canary.id)).phase is Phase.PAUSED
        await clock.jump_to(T0 + 2 * STEP)
        assert await daemon.wake() == 0  # paused canaries are not ticked
        await daemon.fleet.act(canary.id, Action.RESUME, "all good")
        assert await daemon.wake() == 1
        stored = await daemon.state(canary.id)
        assert stored.phase is Phase.RUNNING
        actions = [d.action for d in await daemon.store.list_decisions(canary.id)]
        assert actions == [Action.PAUSE, Action.RESUME]
        # the pause (T0+60 → T0+120) is added to the stage's time
        assert stored.stage_started_at == T0 + STEP


class TestRestart:
    """A new Fleet over the same database resumes where the old one stopped."""

    async def test_restart_keeps_phase_stage_and_timers(
        self,
        daemon: Daemon,
        config: JudgeConfig,
        db_file: str,
        clock: SteppedClock,
        telemetry: Telemetry,
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
        await daemon.store.close()

        await clock.jump_to(T0 + 2 * INTERVAL + 2 * STEP + 30)
        reopened = SqliteStore(db_file)
        await reopened.open()
        try:
            again = Daemon(reopened, clock, telemetry, FakeSource(HEALTHY))
            assert await again.fleet.load() == 1
            assert again.fleet.canaries[canary.id] == before
            first = await again.wake()
            assert first == 1
            tick = (await reopened.list_ticks(canary.id))[-1]
            assert tick.verdict is Verdict.RUNNING  # not re-scoring an interval already scored
            assert tick.score is None
            async with Running(again) as loop:
                await loop.until(T0 + 3 * INTERVAL)
            decisions = await reopened.list_decisions(canary.id)
            assert [(d.action, d.decided_at - T0) for d in decisions] == [
                (Action.STEP, INTERVAL),
                (Action.PROMOTE, 3 * INTERVAL),
            ]
            ends = [r.end - T0 for r in again.source.requests]
            assert all(end % STEP == 0 for end in ends)
            assert {r.start for r in again.source.requests} == {T0}
        finally:
            await reopened.close()

    async def test_restart_keeps_a_pause_and_its_time(
        self,
        daemon: Daemon,
        config: JudgeConfig,
        db_file: str,
        clock: SteppedClock,
        telemetry: Telemetry,
    ) -> None:
        """A canary paused by hand before a restart resumes with the pause skipped."""
        canary = await daemon.register(config, "good", stages=LONG)
        await daemon.wake()
        await clock.jump_to(T0 + 100)
        await daemon.fleet.act(canary.id, Action.PAUSE, "hold on")
        await daemon.store.close()
        reopened = SqliteStore(db_file)
        await reopened.open()
        try:
            again = Daemon(reopened, clock, telemetry, FakeSource(HEALTHY))
            await again.fleet.load()
            await clock.jump_to(T0 + 1000)
            resumed = await again.fleet.act(canary.id, Action.RESUME, "go on")
            assert resumed.phase is Phase.RUNNING
            assert resumed.stage_started_at == T0 + 900
        finally:
            await reopened.close()
