"""Webhook failures are visible, on the daemon as ``Daemon.build`` wires it (dispatcher, store,
telemetry, API) over a fake clock: a delivery the receiver refuses for good is ``failed`` with
its error on GET /api/v1/canaries/{id}, counted in /metrics and logged; and one canary's
deliveries go out in decision order even while the first one is being retried."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from analyzer.daemon import Daemon
from analyzer.metricdata import FloatArray
from analyzer.settings import load_settings
from analyzer.webhooks.dispatcher import WebhookDispatcher
from support.dispatching import parked
from support.fakes import T0, SteppedClock
from support.inprocess import config_dir
from support.loopback import WEBHOOK_SECRET, Client, Reply, WebhookReceiver, client
from support.prometheus import FakePrometheus

ACT = "act-tok-0f3e8a2d"
REGISTER = "reg-tok-3d5b6f10"
Started = Callable[[WebhookReceiver], Any]


def auth(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def steady(query: str, times: FloatArray) -> FloatArray:
    """The same steady traffic for both sides (so every interval passes): 1 % errors of 1000
    requests, p99 about 200 ms."""
    wobble = (times // 60.0) % 5
    if query.startswith("histogram_quantile"):
        return 0.2 + 0.002 * wobble
    return 10.0 + wobble if 'code=~"5.."' in query else np.full(times.size, 1000.0)


@dataclass(slots=True, kw_only=True)
class Running:
    """A started daemon, its fake clock and a client."""

    clock: SteppedClock
    client: Client
    daemon: Daemon

    async def register(self, receiver: WebhookReceiver, **changes: Any) -> str:
        """Register a live canary whose webhook is ``receiver``; returns its id."""
        body = {
            "name": "checkout-2.3.1",
            "service": "checkout",
            "config": "test-golden",
            "baseline": {"labels": {"deployment": "checkout-baseline"}},
            "canary": {"labels": {"deployment": "checkout-canary"}},
            "stages": [{"weight": 10, "duration": "10m"}, {"weight": 100, "duration": "0s"}],
            "webhook": {"url": receiver.url},
        } | changes
        response = await self.client.post("/api/v1/canaries", json=body, headers=auth(REGISTER))
        created = await response.json()
        assert response.status == 201, created
        return str(created["id"])

    async def canary(self, canary_id: str) -> dict[str, Any]:
        """GET /api/v1/canaries/{id}."""
        response = await self.client.get(f"/api/v1/canaries/{canary_id}", headers=auth(ACT))
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body

    async def stored_attempts(self, canary_id: str) -> int:
        """The attempt count recorded for the canary's first delivery (0 before there is one)."""
        deliveries = (await self.canary(canary_id))["deliveries"]
        return int(deliveries[0]["attempts"]) if deliveries else 0

    async def act(self, canary_id: str, action: str) -> None:
        """POST an action; asserts 200."""
        response = await self.client.post(
            f"/api/v1/canaries/{canary_id}/{action}", headers=auth(ACT)
        )
        assert response.status == 200, await response.json()

    @property
    def dispatcher(self) -> WebhookDispatcher:
        """The running daemon's webhook sender."""
        assert self.daemon.dispatcher is not None, "the daemon's components are not running"
        return self.daemon.dispatcher

    async def until(self, check: Callable[[], Awaitable[bool]], *, limit: int = 400) -> None:
        """Check ``check()`` each time the dispatcher has parked (what it sent is recorded),
        and jump the fake clock to its next poll while it does not hold; bounded."""
        for _ in range(limit):
            at = await parked(self.dispatcher, self.clock)
            if await check():
                return
            await self.clock.jump_to(at)
        msg = f"not reached after {limit} dispatcher polls"
        raise AssertionError(msg)

    async def idle(self, polls: int) -> None:
        """Let the dispatcher run ``polls`` polls, each after it has parked."""
        for _ in range(polls):
            await self.clock.jump_to(await parked(self.dispatcher, self.clock))
        await parked(self.dispatcher, self.clock)

    async def deliveries_outcome(self, outcome: str) -> float:
        """canaryd_webhook_deliveries_total{outcome=...} from /metrics."""
        text = await (await self.client.get("/metrics", headers=auth(ACT))).text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "canaryd_webhook_deliveries_total" and sample.labels == {
                    "outcome": outcome
                }:
                    return float(sample.value)
        return 0.0


@pytest.fixture
async def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Started]:
    """Start the daemon from CANARYD_ variables, its webhooks allowed to ``receiver`` only."""
    prometheus = await FakePrometheus(steady).start()
    configs = config_dir(tmp_path)

    @asynccontextmanager
    async def started(receiver: WebhookReceiver) -> AsyncIterator[Running]:
        env = {
            "CANARYD_API_TOKENS": f"act@{ACT},register@{REGISTER}",
            "CANARYD_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CANARYD_WEBHOOK_ALLOWED_HOSTS": receiver.host,
            "CANARYD_PROMETHEUS_URL": prometheus.url,
            "CANARYD_DATABASE_URL": f"sqlite:///{tmp_path / 'canaryd.db'}",
            "CANARYD_CONFIG_DIR": str(configs),
            "CANARYD_WEBHOOK_TIMEOUT_S": "2",
            "CANARYD_SHUTDOWN_GRACE_S": "2",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        clock = SteppedClock()
        daemon = Daemon(load_settings(), clock=clock)
        async with client(daemon.build()) as http:
            yield Running(clock=clock, client=http, daemon=daemon)

    try:
        yield started
    finally:
        await prometheus.close()


class TestPermanentFailure:
    """A receiver that answers 400: the delivery fails for good, and says so everywhere."""

    @pytest.mark.usefixtures("default_logging")
    async def test_failed_delivery_is_visible(
        self, start: Started, webhook_receiver: WebhookReceiver
    ) -> None:
        """One attempt, then state failed with the HTTP error on the canary, the failed
        counter at 1 in /metrics, and a webhook.failed event; it is never retried."""
        webhook_receiver.reply = Reply(status=400)
        with capture_logs() as events:
            async with start(webhook_receiver) as daemon:
                canary_id = await daemon.register(webhook_receiver)
                await daemon.act(canary_id, "promote")

                async def settled() -> bool:
                    deliveries = (await daemon.canary(canary_id))["deliveries"]
                    return deliveries[0]["state"] != "pending"

                await daemon.until(settled)
                await daemon.idle(30)  # thirty more polls: no retry of a permanent failure
                body = await daemon.canary(canary_id)
                failed = await daemon.deliveries_outcome("failed")
                retried = await daemon.deliveries_outcome("retry")
        [delivery] = body["deliveries"]
        assert (delivery["state"], delivery["attempts"]) == ("failed", 1)
        assert delivery["delivery_id"] == f"{canary_id}:1"
        assert delivery["last_error"].startswith("HTTP 400")
        assert delivery["delivered_at"] is None
        assert len(webhook_receiver.attempts) == 1
        assert webhook_receiver.attempts[0].signed
        assert (failed, retried) == (1.0, 0.0)
        [logged] = [e for e in events if e["event"] == "webhook.failed"]
        assert logged["log_level"] == "error"
        assert (logged["delivery_id"], logged["canary_id"]) == (delivery["delivery_id"], canary_id)
        assert (logged["status"], logged["webhook_event"]) == (400, "promote")
        assert logged["err"] == delivery["last_error"]


class TestDecisionOrder:
    """One canary's deliveries go out one at a time, in decision order."""

    async def test_later_decision_waits_for_the_retried_one(
        self, start: Started, webhook_receiver: WebhookReceiver
    ) -> None:
        """The step is refused with 503 (retried with backoff); the promote decided meanwhile
        is not sent until the step is delivered, then follows it."""
        webhook_receiver.reply = Reply(status=503)
        stages = [
            {"weight": 10, "duration": "2m"},
            {"weight": 50, "duration": "10m"},
            {"weight": 100, "duration": "0s"},
        ]
        async with start(webhook_receiver) as daemon:
            canary_id = await daemon.register(webhook_receiver, stages=stages)

            async def running() -> bool:
                return (await daemon.canary(canary_id))["phase"] == "running"

            await daemon.until(running)
            await daemon.clock.jump_to(T0 + 120)  # the end of stage 1: step to 50 %

            async def refused_twice() -> bool:
                return await daemon.stored_attempts(canary_id) >= 2

            await daemon.until(refused_twice)
            await daemon.act(canary_id, "promote")

            async def refused_four_times() -> bool:
                return await daemon.stored_attempts(canary_id) >= 4

            await daemon.until(refused_four_times)
            waiting = (await daemon.canary(canary_id))["deliveries"]
            webhook_receiver.reply = Reply(status=200)

            async def both_delivered() -> bool:
                deliveries = (await daemon.canary(canary_id))["deliveries"]
                return [d["state"] for d in deliveries] == ["delivered", "delivered"]

            await daemon.until(both_delivered)
            body = await daemon.canary(canary_id)
        assert [(d["action"], d["seq"]) for d in body["decisions"]] == [("step", 1), ("promote", 2)]
        assert [(d["event"], d["state"], d["attempts"]) for d in waiting] == [
            ("step", "pending", 4),
            ("promote", "pending", 0),
        ]
        assert waiting[0]["last_error"].startswith("HTTP 503")
        sent = [r.headers["X-Canaryd-Delivery"] for r in webhook_receiver.attempts]
        first = sent.index(f"{canary_id}:2")
        assert set(sent[:first]) == {f"{canary_id}:1"}
        assert sent[first:] == [f"{canary_id}:2"]
        assert webhook_receiver.events[-2:] == ["step", "promote"]
        step, promote = body["deliveries"]
        assert step["delivered_at"] <= promote["delivered_at"]
        assert (step["attempts"], promote["attempts"]) == (first, 1)
