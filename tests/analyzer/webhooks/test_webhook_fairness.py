"""The fair webhook queue: a hanging receiver holds only its own slots, suspects start last.

Finding M1 of the isolation review: with 64 canaries' webhooks pointed at a receiver that never
answers, a healthy canary's promote waited 262 s behind them (16 global slots, oldest first).
"""

from __future__ import annotations

import asyncio

import pytest

from analyzer.model import Delivery, DeliveryState
from analyzer.webhooks.fairness import Destinations, destination_of
from support.loopback import Reply, WebhookReceiver
from support.outbox import Harness

HANG = Reply(hold_s=60.0)


def delivery(canary_id: str, url: str, created_at: float = 0.0) -> Delivery:
    """A pending delivery of ``canary_id`` to ``url``."""
    return Delivery(
        delivery_id=f"{canary_id}:1",
        canary_id=canary_id,
        seq=1,
        event="step",
        url=url,
        body=b"{}",
        created_at=created_at,
    )


class TestDestinations:
    """Destinations.pick: which due heads start, and in which order."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("https://Deploy.Internal/hooks", "https://deploy.internal:443"),
            ("http://deploy.internal/hooks", "http://deploy.internal:80"),
            ("http://127.0.0.1:8080/a?b=c", "http://127.0.0.1:8080"),
            ("http://[::1]:9/x", "http://::1:9"),
        ],
    )
    def test_destination_is_scheme_host_and_port(self, url: str, expected: str) -> None:
        """Paths and queries do not make another destination; default ports are filled in."""
        assert destination_of(url) == expected

    def test_per_destination_cap(self) -> None:
        """Ten canaries to one receiver and one to another: two of the ten start, and the
        other receiver's delivery is not held behind the rest of them."""
        queue = Destinations(max_concurrency=16, per_destination=2)
        due = [delivery(f"a{k}", "http://a.test/h", k) for k in range(10)]
        due.append(delivery("b", "http://b.test/h", 99))
        picked = [d.canary_id for d in queue.pick(due, [])]
        assert picked == ["a0", "a1", "b"]

    def test_in_flight_counts_toward_the_caps(self) -> None:
        """Attempts already in flight use their destination's and the global slots."""
        queue = Destinations(max_concurrency=3, per_destination=2)
        for k in range(2):
            queue.started(delivery(f"a{k}", "http://a.test/h"))
        due = [delivery("a2", "http://a.test/h"), *(delivery(c, f"http://{c}.test/") for c in "bc")]
        assert [d.canary_id for d in queue.pick(due, ["a0", "a1"])] == ["b"]
        assert queue.in_flight == 2

    def test_a_busy_canary_starts_nothing(self) -> None:
        """A canary with an attempt in flight gets no second one (decision order)."""
        queue = Destinations(max_concurrency=8, per_destination=8)
        assert queue.pick([delivery("a", "http://a.test/")], ["a"]) == []

    def test_suspects_start_last_and_hold_at_most_half(self) -> None:
        """A receiver that timed out is suspect: its older heads start after an answering
        receiver's, and suspects together hold at most half the slots; an answer clears it."""
        queue = Destinations(max_concurrency=4, per_destination=4)
        hung = "http://hung.test/h"
        queue.started(delivery("x", hung))
        queue.finished(delivery("x", hung), answered=False)
        assert queue.suspect(hung)
        due = [delivery(f"h{k}", hung, k) for k in range(4)]
        due.append(delivery("ok", "http://ok.test/h", 10))
        assert [d.canary_id for d in queue.pick(due, [])] == ["ok", "h0", "h1"]
        queue.started(delivery("y", hung))
        queue.finished(delivery("y", hung), answered=True)
        assert not queue.suspect(hung)
        assert [d.canary_id for d in queue.pick(due, [])] == ["h0", "h1", "h2", "h3"]


class TestDispatcher:
    """The dispatcher against real receivers on 127.0.0.1."""

    async def test_a_hanging_receiver_does_not_delay_another(self, harness: Harness) -> None:
        """Twenty canaries' webhooks hang at one receiver; a later decision of another canary
        to another receiver is delivered while they still hang, and the hanging receiver has
        only its per-destination share of attempts in flight."""
        hanging = harness.receiver
        hanging.reply = HANG
        for k in range(20):
            await harness.queue(f"hung{k}")
        async with WebhookReceiver() as healthy:
            await harness.queue("healthy", url=healthy.url)
            dispatcher = harness.dispatcher(timeout_s=60.0, max_concurrency=16, per_destination=2)
            stop = asyncio.Event()
            run = asyncio.create_task(dispatcher.run(stop, poll_s=1.0))
            try:
                await healthy.wait_for(1)
                await harness.recorded("healthy:1", DeliveryState.DELIVERED)
                assert len(hanging.in_flight) == 2
                assert len(hanging.attempts) == 2
            finally:
                stop.set()
                hanging.release()
                async with asyncio.timeout(10):
                    await run
        assert healthy.acknowledged("healthy:1")
