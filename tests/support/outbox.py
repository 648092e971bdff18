"""The webhook dispatcher's test rig: a store with live canaries and their outbox rows, a
session, a fake clock and a recording receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import aiohttp
import pytest

from analyzer.model import Action, Canary, Decision, Delivery, DeliveryState, Phase, Side, Stage
from analyzer.store.sqlite import SqliteStore
from analyzer.webhooks.dispatcher import WebhookDispatcher
from analyzer.webhooks.message import make_delivery
from support.dispatching import parked
from support.fakes import SteppedClock
from support.loopback import WEBHOOK_SECRET, WebhookReceiver

__all__ = ["Harness"]


@dataclass
class Harness:
    """A store, a session, a fake clock and a receiver, and what tests build from them."""

    store: SqliteStore
    session: aiohttp.ClientSession
    clock: SteppedClock
    receiver: WebhookReceiver
    outcomes: list[str] = field(default_factory=list)

    def dispatcher(self, **options: object) -> WebhookDispatcher:
        """A dispatcher allowed to reach 127.0.0.1 with seeded jitter; options override."""
        settings: dict[str, object] = {
            "secret": WEBHOOK_SECRET,
            "allowed_hosts": ["127.0.0.1"],
            "timeout_s": 2.0,
            "rng": random.Random(7),
            "on_outcome": self.outcomes.append,
            **options,
        }
        return WebhookDispatcher(self.store, self.session, self.clock, **settings)  # type: ignore[arg-type]

    async def queue(self, canary_id: str, count: int = 1, url: str = "") -> list[Delivery]:
        """Register a live canary and record ``count`` step decisions with their outbox rows."""
        now = self.clock.now()
        canary = Canary(
            id=canary_id,
            name=f"{canary_id}-2.3.1",
            service="checkout",
            config_name="golden",
            config_hash="ab" * 32,
            baseline=Side(labels={"deployment": "base"}),
            canary=Side(labels={"deployment": "canary"}),
            stages=(Stage(weight=5.0, duration_s=60.0), Stage(weight=100.0, duration_s=0.0)),
            webhook_url=url or self.receiver.url,
            created_at=now,
            stage_started_at=now,
        )
        await self.store.create_canary(canary, {})
        for _ in range(count):
            canary = await self._decide(canary)
        return await self.store.list_deliveries(canary_id)

    async def _decide(self, canary: Canary) -> Canary:
        decision = Decision(
            canary_id=canary.id,
            seq=canary.decision_seq + 1,
            action=Action.STEP,
            reason="score 91 ≥ 75",
            score=91.0,
            stage_index=canary.stage_index,
            weight=canary.stage.weight,
            decided_at=self.clock.now(),
            phase_after=Phase.RUNNING,
        )
        after = replace(canary, decision_seq=decision.seq)
        evidence = f"http://canaryd.test/api/v1/canaries/{canary.id}"
        delivery = make_delivery(after, decision, evidence, self.clock.now())
        await self.store.save_decision(
            after, decision, delivery, expected_decision_seq=canary.decision_seq
        )
        return after

    async def recorded(self, delivery_id: str, state: DeliveryState, *, limit: int = 500) -> None:
        """Wait until the store holds ``delivery_id`` in ``state`` (polled, bounded)."""
        canary_id = delivery_id.partition(":")[0]
        for _ in range(limit):
            stored = {d.delivery_id: d.state for d in await self.store.list_deliveries(canary_id)}
            if stored.get(delivery_id) is state:
                return
            await asyncio.sleep(0.01)
        pytest.fail(f"{delivery_id} not {state} in the store after {limit} polls: {stored}")

    async def until(
        self, dispatcher: WebhookDispatcher, condition: Callable[[], bool], *, limit: int = 300
    ) -> None:
        """Jump the fake clock from poll to poll of a running ``dispatcher``, each time once it
        has parked, until ``condition`` holds; bounded."""
        for _ in range(limit):
            at = await parked(dispatcher, self.clock)
            if condition():
                return
            await self.clock.jump_to(at)
        pytest.fail(f"condition never held in {limit} polls")
