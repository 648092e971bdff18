"""WebhookDispatcher against real receivers on 127.0.0.1: signing, retries, ordering, logs."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from analyzer.clock import FakeClock
from analyzer.model import Action, Canary, Decision, Delivery, DeliveryState, Phase, Side, Stage
from analyzer.store.sqlite import SqliteStore
from analyzer.webhooks.dispatcher import WebhookDispatcher
from analyzer.webhooks.message import make_delivery, sign, verify

SECRET = "wh-secret-5f1e0c2a9b"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    hang: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    signed: bool


class Receiver:
    """A recording webhook endpoint: verifies the HMAC, answers from a per-delivery plan."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plan: dict[str, list[Reply]] = {}
        self.release = asyncio.Event()
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        """The hook's URL."""
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    @property
    def ids(self) -> list[str]:
        """The X-Canaryd-Delivery of every request, in arrival order."""
        return [r.headers["X-Canaryd-Delivery"] for r in self.requests]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Record the request, then answer as planned (200 by default)."""
        body = await request.read()
        headers = dict(request.headers)
        signed = verify(body, SECRET, headers.get("X-Canaryd-Signature-256", ""))
        self.requests.append(Received(headers=headers, body=body, signed=signed))
        queue = self.plan.get(headers.get("X-Canaryd-Delivery", ""), [])
        reply = queue.pop(0) if queue else Reply()
        if reply.hang:
            async with asyncio.timeout(5):
                await self.release.wait()
        return web.Response(status=reply.status, headers=reply.headers, text=reply.text)


@dataclass
class Harness:
    """A store, a session, a fake clock and a receiver, and what tests build from them."""

    store: SqliteStore
    session: aiohttp.ClientSession
    clock: FakeClock
    receiver: Receiver
    outcomes: list[str] = field(default_factory=list)

    def dispatcher(self, **options: object) -> WebhookDispatcher:
        """A dispatcher allowed to reach 127.0.0.1 with seeded jitter; options override."""
        settings: dict[str, object] = {
            "secret": SECRET,
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

    async def until(self, condition: Callable[[], bool], step_s: float = 1.0) -> None:
        """Advance the fake clock step by step (bounded) until ``condition`` holds."""
        for _ in range(300):
            if condition():
                return
            await self.clock.advance(step_s)
            await asyncio.sleep(0.01)
        pytest.fail("condition never held")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver listening on 127.0.0.1 at a free port."""
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    app.router.add_post("/elsewhere", hook.handle)
    hook.server = TestServer(app, host="127.0.0.1")
    await hook.server.start_server()
    yield hook
    hook.release.set()
    await hook.server.close()


@pytest.fixture
def harness(
    store: SqliteStore, session: aiohttp.ClientSession, clock: FakeClock, receiver: Receiver
) -> Harness:
    """Everything a dispatcher test needs."""
    return Harness(store=store, session=session, clock=clock, receiver=receiver)


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class TestDeliver:
    """WebhookDispatcher.deliver: one attempt and its recorded outcome."""

    async def test_signed_with_contract_headers(self, harness: Harness) -> None:
        """The receiver gets the raw body with a valid HMAC and the contract's headers."""
        (delivery,) = await harness.queue("c1")
        await harness.clock.advance(3.0)
        done = await harness.dispatcher().deliver(delivery)
        (request,) = harness.receiver.requests
        assert request.signed
        assert request.body == delivery.body
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Canaryd-Event"] == "step"
        assert request.headers["X-Canaryd-Delivery"] == "c1:1"
        assert request.headers["X-Canaryd-Signature-256"] == sign(delivery.body, SECRET)
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
        first, second = harness.receiver.requests
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

    async def test_refused_connection_is_retried(
        self, harness: Harness, closed_port_url: str
    ) -> None:
        """A closed port is a retryable connection error, not an exception."""
        (delivery,) = await harness.queue("c1", url=closed_port_url)
        retry = await harness.dispatcher().deliver(delivery)
        assert retry.state is DeliveryState.PENDING
        assert retry.last_error.startswith("ClientConnectorError")
        assert harness.outcomes == ["retry"]

    async def test_slow_receiver_times_out(self, harness: Harness) -> None:
        """A handler slower than timeout_s is a retryable timeout."""
        (delivery,) = await harness.queue("c1")
        harness.receiver.plan["c1:1"] = [Reply(hang=True)]
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
        elsewhere = harness.receiver.url.replace("/hook", "/elsewhere")
        harness.receiver.plan["c1:1"] = [Reply(status=307, headers={"Location": elsewhere})]
        failed = await harness.dispatcher().deliver(delivery)
        assert failed.state is DeliveryState.FAILED
        assert "redirects are not followed" in failed.last_error
        assert len(harness.receiver.requests) == 1

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
        assert harness.receiver.requests == []


class TestRun:
    """WebhookDispatcher.run: the polling loop."""

    async def test_delivers_everything_then_stops(self, harness: Harness) -> None:
        """Every queued delivery of several canaries goes out once, each canary in order."""
        for canary_id in "abc":
            await harness.queue(canary_id, count=3)
        receiver, stop = harness.receiver, asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(harness.dispatcher().run(stop, poll_s=1.0))
            await harness.until(lambda: len(receiver.requests) == 9)
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
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(harness.dispatcher(base_backoff_s=60.0).run(stop, poll_s=1.0))
            await harness.until(lambda: len(receiver.requests) == 1)
            for _ in range(20):  # polls inside the backoff (≥ 30 s): nothing else goes out
                await harness.clock.advance(1.0)
                await asyncio.sleep(0.01)
            assert receiver.ids == ["c1:1"]
            await harness.until(lambda: len(receiver.requests) == 3)
            stop.set()
        assert receiver.ids == ["c1:1", "c1:1", "c1:2"]

    async def test_one_in_flight_per_canary_others_proceed(self, harness: Harness) -> None:
        """A hanging delivery holds back its own canary only."""
        await harness.queue("slow", count=2)
        await harness.queue("fast", count=2)
        receiver, stop = harness.receiver, asyncio.Event()
        receiver.plan["slow:1"] = [Reply(hang=True)]
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(harness.dispatcher().run(stop, poll_s=1.0))
            await harness.until(lambda: "fast:2" in receiver.ids)
            assert receiver.ids.count("slow:1") == 1
            assert "slow:2" not in receiver.ids
            receiver.release.set()
            await harness.until(lambda: "slow:2" in receiver.ids)
            stop.set()
        assert [i for i in receiver.ids if i.startswith("slow")] == ["slow:1", "slow:2"]

    async def test_stop_interrupts_the_pause(self, harness: Harness) -> None:
        """Setting stop ends run although the fake clock never reaches the next poll."""
        stop = asyncio.Event()
        async with asyncio.timeout(5), asyncio.TaskGroup() as tasks:
            tasks.create_task(harness.dispatcher().run(stop, poll_s=3600.0))
            await asyncio.sleep(0.05)
            stop.set()


class TestLogs:
    """What the dispatcher logs."""

    @pytest.mark.usefixtures("default_logging")
    async def test_outcomes_logged_without_secret_or_signature(self, harness: Harness) -> None:
        """delivered, retry_scheduled and failed are logged; the secret and signature never are."""
        deliveries = await harness.queue("c1", count=3)
        signature = sign(deliveries[2].body, SECRET)
        harness.receiver.plan["c1:2"] = [Reply(status=503)]
        harness.receiver.plan["c1:3"] = [Reply(status=400, text=f"bad {signature} {SECRET}")]
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
        assert SECRET not in text
        for delivery in deliveries:
            assert sign(delivery.body, SECRET).removeprefix("sha256=") not in text
        stored = await harness.store.list_deliveries("c1")
        assert all(SECRET not in d.last_error for d in stored)
