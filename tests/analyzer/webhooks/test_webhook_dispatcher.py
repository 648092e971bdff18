"""WebhookDispatcher against real receivers on 127.0.0.1: signing, retries, ordering, logs."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from analyzer.errors import InvalidInput
from analyzer.model import DeliveryState
from analyzer.webhooks.message import sign
from support.dispatching import parked
from support.loopback import WEBHOOK_SECRET, Reply
from support.outbox import Harness

HANG = Reply(hold_s=30.0)
"""Held until the receiver is released (or the client gives up)."""
POLL_S = 1.0


class TestDeliver:
    """WebhookDispatcher.deliver: one attempt and its recorded outcome."""

    async def test_signed_with_contract_headers(self, harness: Harness) -> None:
        """The receiver gets the raw body with a valid HMAC and the contract's headers."""
        (delivery,) = await harness.queue("c1")
        await harness.clock.advance(3.0)
        done = await harness.dispatcher().deliver(delivery)
        (request,) = harness.receiver.attempts
        assert request.signed
        assert request.body == delivery.body
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Canaryd-Event"] == "step"
        assert request.headers["X-Canaryd-Delivery"] == "c1:1"
        assert request.headers["X-Canaryd-Signature-256"] == sign(delivery.body, WEBHOOK_SECRET)
        assert request.headers["User-Agent"] == "canaryd"
        assert done.state is DeliveryState.DELIVERED
        assert (done.attempts, done.delivered_at) == (1, harness.clock.now())
        assert await harness.store.list_deliveries("c1") == [done]
        assert harness.outcomes == ["delivered"]

    async def test_503_then_200_with_stable_delivery_id(self, harness: Harness) -> None:
        """A 503 schedules a jittered retry; the retry carries the same id, body and signature."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [Reply(status=503, text="upstream busy")]
        dispatcher, now = harness.dispatcher(), harness.clock.now()
        retry = await dispatcher.deliver(delivery)
        assert (retry.state, retry.attempts) == (DeliveryState.PENDING, 1)
        assert now + 0.5 <= retry.next_attempt_at <= now + 1.0
        assert retry.last_error == "HTTP 503: upstream busy"
        assert await harness.store.due_deliveries(now) == []
        await harness.clock.advance(retry.next_attempt_at - now)
        (due,) = await harness.store.due_deliveries(harness.clock.now())
        done = await dispatcher.deliver(due)
        assert (done.state, done.attempts, done.last_error) == (DeliveryState.DELIVERED, 2, "")
        first, second = harness.receiver.attempts
        assert first.headers["X-Canaryd-Delivery"] == second.headers["X-Canaryd-Delivery"]
        assert first.body == second.body
        signature = "X-Canaryd-Signature-256"
        assert first.headers[signature] == second.headers[signature]
        assert first.signed
        assert second.signed
        assert harness.outcomes == ["retry", "delivered"]

    async def test_backoff_doubles_up_to_the_cap(self, harness: Harness) -> None:
        """Successive 500s wait base·2^n, capped, times a jitter in [0.5, 1.0]."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [Reply(status=500)] * 7
        dispatcher = harness.dispatcher(base_backoff_s=2.0, max_backoff_s=20.0)
        for ceiling in (2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0):
            delivery = await dispatcher.deliver(delivery)
            delay = delivery.next_attempt_at - harness.clock.now()
            assert 0.5 * ceiling <= delay <= ceiling
            await harness.clock.advance(delay)
        assert delivery.attempts == 7

    @pytest.mark.parametrize("status", [429, 503])
    async def test_retry_after_honoured_when_longer(self, harness: Harness, status: int) -> None:
        """A numeric Retry-After longer than the backoff sets the next attempt."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [Reply(status=status, headers={"Retry-After": "120"})]
        retry = await harness.dispatcher().deliver(delivery)
        assert retry.state is DeliveryState.PENDING
        assert retry.next_attempt_at == harness.clock.now() + 120.0

    async def test_retry_after_shorter_or_not_numeric_is_ignored(self, harness: Harness) -> None:
        """A Retry-After shorter than the backoff, or an HTTP date, keeps the backoff."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [
            Reply(status=429, headers={"Retry-After": "0"}),
            Reply(status=429, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}),
        ]
        dispatcher = harness.dispatcher(base_backoff_s=10.0)
        for ceiling in (10.0, 20.0):
            delivery = await dispatcher.deliver(delivery)
            assert 0.5 * ceiling <= delivery.next_attempt_at - harness.clock.now() <= ceiling

    async def test_408_is_retried(self, harness: Harness) -> None:
        """A 408 Request Timeout is retried like a 5xx."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [Reply(status=408)]
        retry = await harness.dispatcher().deliver(delivery)
        assert (retry.state, retry.last_error) == (DeliveryState.PENDING, "HTTP 408")

    async def test_refused_connection_is_retried(self, harness: Harness, refused_url: str) -> None:
        """A closed port is a retryable connection error, not an exception."""
        (delivery,) = await harness.queue("c1", url=refused_url)
        retry = await harness.dispatcher().deliver(delivery)
        assert retry.state is DeliveryState.PENDING
        assert retry.last_error.startswith("ClientConnectorError")
        assert harness.outcomes == ["retry"]

    async def test_slow_receiver_times_out(self, harness: Harness) -> None:
        """A handler slower than timeout_s is a retryable timeout."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [HANG]
        retry = await harness.dispatcher(timeout_s=0.2).deliver(delivery)
        assert (retry.state, retry.last_error) == (DeliveryState.PENDING, "timed out after 0.2s")

    @pytest.mark.parametrize("status", [400, 404, 410, 422])
    async def test_other_4xx_fail_permanently(self, harness: Harness, status: int) -> None:
        """Other 4xx fail the delivery at once; it is never due again."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [Reply(status=status, text='{"error": "no such\n id"}')]
        failed = await harness.dispatcher().deliver(delivery)
        assert (failed.state, failed.attempts) == (DeliveryState.FAILED, 1)
        assert failed.last_error == f'HTTP {status}: {{"error": "no such id"}}'
        await harness.clock.advance(2 * 86_400)
        assert await harness.store.due_deliveries(harness.clock.now()) == []
        assert harness.outcomes == ["failed"]

    async def test_redirect_is_not_followed(self, harness: Harness) -> None:
        """A 3xx fails the delivery without following it anywhere."""
        (delivery,) = await harness.queue("c1")
        elsewhere = harness.receiver.url_for("/elsewhere")
        harness.receiver.plan["c1:1"] = [Reply(status=307, headers={"Location": elsewhere})]
        failed = await harness.dispatcher().deliver(delivery)
        assert failed.state is DeliveryState.FAILED
        assert "redirects are not followed" in failed.last_error
        assert len(harness.receiver.attempts) == 1

    async def test_gives_up_after_the_configured_time(self, harness: Harness) -> None:
        """A retryable failure past give_up_after_s since the decision fails the delivery."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [Reply(status=502)] * 2
        dispatcher = harness.dispatcher(give_up_after_s=600.0)
        await harness.clock.advance(599.0)
        retry = await dispatcher.deliver(delivery)
        assert retry.state is DeliveryState.PENDING
        await harness.clock.advance(1.0)
        failed = await dispatcher.deliver(retry)
        assert (failed.state, failed.attempts) == (DeliveryState.FAILED, 2)
        assert failed.last_error == "gave up after 2 attempts: HTTP 502"
        assert harness.outcomes == ["retry", "failed"]

    async def test_retry_after_is_capped_at_the_give_up_time(self, harness: Harness) -> None:
        """A huge Retry-After cannot park a delivery beyond its give-up time."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [Reply(status=429, headers={"Retry-After": "99999999"})]
        retry = await harness.dispatcher(give_up_after_s=3600.0).deliver(delivery)
        assert retry.next_attempt_at == delivery.created_at + 3600.0

    async def test_host_no_longer_allowed(self, harness: Harness) -> None:
        """A host removed from the allow-list fails the delivery without a request."""
        (delivery,) = await harness.queue("c1")
        failed = await harness.dispatcher(allowed_hosts=["deploy.internal"]).deliver(delivery)
        assert failed.state is DeliveryState.FAILED
        assert "not in the allowed webhook hosts" in failed.last_error
        assert harness.receiver.attempts == []


class TestRun:
    """WebhookDispatcher.run: the polling loop."""

    async def test_delivers_everything_then_stops(self, harness: Harness) -> None:
        """Every queued delivery of several canaries goes out once, each canary in order."""
        for canary_id in "abc":
            await harness.queue(canary_id, count=3)
        receiver, stop, dispatcher = harness.receiver, asyncio.Event(), harness.dispatcher()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(dispatcher.run(stop, poll_s=POLL_S))
            await harness.until(dispatcher, lambda: len(receiver.attempts) == 9)
            stop.set()
        for canary_id in "abc":
            sent = [i for i in receiver.ids if i.startswith(canary_id)]
            assert sent == [f"{canary_id}:1", f"{canary_id}:2", f"{canary_id}:3"]
        assert (await harness.store.delivery_counts())["delivered"] == 9

    async def test_later_delivery_waits_for_a_retrying_one(self, harness: Harness) -> None:
        """While a canary's first delivery backs off, its second is not sent."""
        await harness.queue("c1", count=2)
        receiver, stop = harness.receiver, asyncio.Event()
        receiver.plan["c1:1"] = [Reply(status=503)]
        dispatcher = harness.dispatcher(base_backoff_s=60.0)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(dispatcher.run(stop, poll_s=POLL_S))
            await harness.until(dispatcher, lambda: len(receiver.attempts) == 1)
            retrying, _waiting = await harness.store.list_deliveries("c1")
            backoff_ends = retrying.next_attempt_at  # 30–60 s away
            polls = 0
            while (at := await parked(dispatcher, harness.clock)) < backoff_ends:
                assert receiver.ids == ["c1:1"], f"sent during the backoff, at {at}"
                await harness.clock.jump_to(at)
                polls += 1
            assert polls >= 29  # every poll inside the backoff looked, and sent nothing
            await harness.until(dispatcher, lambda: len(receiver.attempts) == 3)
            stop.set()
        assert receiver.ids == ["c1:1", "c1:1", "c1:2"]

    async def test_one_in_flight_per_canary_others_proceed(self, harness: Harness) -> None:
        """A hanging delivery holds back its own canary only."""
        await harness.queue("slow", count=2)
        await harness.queue("fast", count=2)
        receiver, stop, dispatcher = harness.receiver, asyncio.Event(), harness.dispatcher()
        receiver.plan["slow:1"] = [HANG]
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(dispatcher.run(stop, poll_s=POLL_S))
            await harness.recorded("fast:1", DeliveryState.DELIVERED)
            await harness.clock.jump_to(harness.clock.now() + POLL_S)  # the next poll
            await harness.recorded("fast:2", DeliveryState.DELIVERED)
            assert receiver.in_flight == ["slow:1"]
            assert not dispatcher.parked.is_set(), "parked while a delivery is in flight"
            assert "slow:2" not in receiver.ids
            receiver.release()
            await harness.until(dispatcher, lambda: "slow:2" in receiver.ids)
            stop.set()
        assert [i for i in receiver.ids if i.startswith("slow")] == ["slow:1", "slow:2"]

    async def test_stop_interrupts_the_pause(self, harness: Harness) -> None:
        """Setting stop ends run although the fake clock never reaches the next poll."""
        stop, dispatcher, start = asyncio.Event(), harness.dispatcher(), harness.clock.now()
        run = asyncio.create_task(dispatcher.run(stop, poll_s=3600.0))
        try:
            assert await parked(dispatcher, harness.clock) == start + 3600.0
            assert not run.done()
            stop.set()
            async with asyncio.timeout(5):
                await run
        finally:
            run.cancel()
        assert harness.clock.now() == start
        assert not dispatcher.parked.is_set()


class TestParked:
    """WebhookDispatcher.parked: the loop asleep with nothing in flight."""

    async def test_parked_once_the_due_deliveries_are_recorded(self, harness: Harness) -> None:
        """Not parked while a delivery is held by the receiver; parked once it is recorded."""
        await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [HANG]
        stop, dispatcher = asyncio.Event(), harness.dispatcher()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(dispatcher.run(stop, poll_s=POLL_S))
            await harness.receiver.wait_for(1)
            assert not dispatcher.parked.is_set()
            harness.receiver.release()
            until = await parked(dispatcher, harness.clock)
            (stored,) = await harness.store.list_deliveries("c1")
            stop.set()
        assert stored.state is DeliveryState.DELIVERED
        assert until == harness.clock.now() + POLL_S

    async def test_wakes_at_each_poll_and_parks_again(self, harness: Harness) -> None:
        """With nothing due it parks until the next poll, and again after each one."""
        stop, dispatcher, start = asyncio.Event(), harness.dispatcher(), harness.clock.now()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(dispatcher.run(stop, poll_s=POLL_S))
            polls = []
            for _ in range(3):
                polls.append(await parked(dispatcher, harness.clock))
                await harness.clock.jump_to(polls[-1])
            stop.set()
        assert polls == [start + POLL_S, start + 2 * POLL_S, start + 3 * POLL_S]
        assert harness.receiver.attempts == []


class TestArguments:
    """The constructor refuses what cannot work, naming the argument."""

    @pytest.mark.parametrize(
        ("argument", "value"),
        [
            ("max_concurrency", 0),
            ("timeout_s", 0.0),
            ("base_backoff_s", -1.0),
            ("max_backoff_s", 0.0),
            ("give_up_after_s", float("nan")),
        ],
    )
    def test_not_positive_is_invalid_input(
        self, harness: Harness, argument: str, value: float
    ) -> None:
        """A limit, timeout or backoff that is not positive is InvalidInput naming it."""
        with pytest.raises(InvalidInput) as raised:
            harness.dispatcher(**{argument: value})
        assert raised.value.field == argument
        assert str(value) in raised.value.message


class TestLogs:
    """What the dispatcher logs."""

    @pytest.mark.usefixtures("default_logging")
    async def test_outcomes_logged_without_secret_or_signature(self, harness: Harness) -> None:
        """delivered, retry_scheduled and failed are logged; the secret and signature never are."""
        deliveries = await harness.queue("c1", count=3)
        signature = sign(deliveries[2].body, WEBHOOK_SECRET)
        harness.receiver.plan["c1:2"] = [Reply(status=503)]
        harness.receiver.plan["c1:3"] = [
            Reply(status=400, text=f"bad {signature} {WEBHOOK_SECRET}")
        ]
        dispatcher = harness.dispatcher()
        with structlog.testing.capture_logs() as logs:
            for delivery in deliveries:
                await dispatcher.deliver(delivery)
        events = [entry["event"] for entry in logs]
        assert events == ["webhook.delivered", "webhook.retry_scheduled", "webhook.failed"]
        expected = {"delivery_id": "c1:1", "canary_id": "c1", "attempt": 1, "status": 200}
        assert expected.items() <= logs[0].items()
        assert logs[2]["err"] == "HTTP 400: bad sha256=[redacted] [redacted]"
        text = repr(logs)
        assert WEBHOOK_SECRET not in text
        for delivery in deliveries:
            assert sign(delivery.body, WEBHOOK_SECRET).removeprefix("sha256=") not in text
        stored = await harness.store.list_deliveries("c1")
        assert all(WEBHOOK_SECRET not in d.last_error for d in stored)
