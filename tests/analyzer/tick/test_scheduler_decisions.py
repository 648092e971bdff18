"""The scheduler's decisions through the loop, with their ticks and outbox rows in the store,
and manual actions that race a tick in flight."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Action, DeliveryState, Mode, Phase, Stage, Verdict, Window
from analyzer.sources.protocol import FetchRequest
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.webhooks.dispatcher import WebhookDispatcher
from support.fakes import T0, FakeSource, SteppedClock, outage
from support.loopback import WEBHOOK_SECRET, WebhookReceiver
from support.scheduling import (
    HEALTHY,
    INTERVAL,
    ON_FIRE,
    PUBLIC_URL,
    REGRESSED,
    STEP,
    Daemon,
    Running,
    by_deployment,
)


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
