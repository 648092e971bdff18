"""SqliteStore's outbox queue (due rows per canary in decision order, updates, counts), and
many writers at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from analyzer.errors import Conflict, NotFound
from analyzer.model import Action, DeliveryState
from analyzer.store.sqlite import SqliteStore
from support.fakes import T0
from support.store_rows import make_canary, make_decision, make_outbox_row, next_tick, with_ticks


class TestOutbox:
    """The outbox queue: due lookups per canary in decision order, updates, counts."""

    async def test_one_per_canary_oldest_first(self, store: SqliteStore) -> None:
        """Only each canary's oldest pending delivery is due; canaries come oldest first."""
        await with_ticks(store, make_canary("b"), [Action.STEP, Action.STEP])
        await with_ticks(store, make_canary("a", created_at=T0 + 30), [None, Action.STEP])
        due = await store.due_deliveries(T0 + 1000)
        assert [d.delivery_id for d in due] == ["b:1", "a:1"]
        assert [d.delivery_id for d in await store.due_deliveries(T0 + 1000, limit=1)] == ["b:1"]

    async def test_nothing_before_next_attempt_at(self, store: SqliteStore) -> None:
        """A head delivery that is not yet due holds back its canary's later ones."""
        await with_ticks(store, make_canary(), [Action.STEP, Action.PROMOTE])
        (head, _) = await store.list_deliveries("c1")
        assert await store.due_deliveries(T0 + 59) == []
        await store.update_delivery(replace(head, attempts=1, next_attempt_at=T0 + 500))
        assert await store.due_deliveries(T0 + 499) == []
        assert [d.delivery_id for d in await store.due_deliveries(T0 + 500)] == ["c1:1"]

    async def test_finished_head_releases_the_next(self, store: SqliteStore) -> None:
        """Once the head is delivered or failed, the next delivery of the canary is due."""
        await with_ticks(store, make_canary(), [Action.STEP, Action.STEP, Action.PROMOTE])
        first, second, _ = await store.list_deliveries("c1")
        await store.update_delivery(
            replace(first, state=DeliveryState.DELIVERED, attempts=1, delivered_at=T0 + 61)
        )
        assert [d.delivery_id for d in await store.due_deliveries(T0 + 999)] == ["c1:2"]
        await store.update_delivery(replace(second, state=DeliveryState.FAILED, last_error="410"))
        assert [d.delivery_id for d in await store.due_deliveries(T0 + 999)] == ["c1:3"]

    async def test_update_round_trip_and_counts(self, store: SqliteStore) -> None:
        """update_delivery stores every outcome field; delivery_counts counts each state."""
        await with_ticks(store, make_canary(), [Action.STEP, Action.STEP])
        first, _ = await store.list_deliveries("c1")
        done = replace(
            first,
            state=DeliveryState.FAILED,
            attempts=7,
            next_attempt_at=T0 + 900,
            last_error="HTTP 410 Gone",
            delivered_at=None,
        )
        await store.update_delivery(done)
        assert (await store.list_deliveries("c1"))[0] == done
        counts = await store.delivery_counts()
        assert counts == {"pending": 1, "delivered": 0, "failed": 1, "skipped": 0}

    async def test_update_unknown_delivery(self, store: SqliteStore) -> None:
        """Updating a delivery the outbox does not hold raises NotFound."""
        decision = make_decision(make_canary(), T0)
        with pytest.raises(NotFound):
            await store.update_delivery(make_outbox_row(decision, T0))


class TestConcurrency:
    """Many tasks writing at once."""

    async def test_racing_ticks_only_one_wins(self, store: SqliteStore) -> None:
        """Twenty tasks saving the same next tick: exactly one succeeds, the rest conflict."""
        canary = make_canary()
        await store.create_canary(canary, {})
        steps = [next_tick(canary, T0 + 60 + i, Action.STEP) for i in range(20)]
        outcomes = await asyncio.gather(
            *(
                store.save_tick(s.canary, s.tick, s.decision, s.delivery, expected_tick_seq=0)
                for s in steps
            ),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 1
        assert all(isinstance(o, Conflict) for o in outcomes if o is not None)
        assert len(await store.list_decisions("c1")) == 1
        assert len(await store.list_deliveries("c1")) == 1

    async def test_retrying_writers_serialise(self, store: SqliteStore) -> None:
        """Ten tasks each adding ten ticks with re-read-and-retry leave 100 contiguous ticks."""
        await store.create_canary(make_canary(), {})

        async def writer() -> int:
            conflicts = 0
            for _ in range(10):
                for _attempt in range(1000):
                    current = await store.get_canary("c1")
                    assert current is not None
                    step = next_tick(current, T0 + current.tick_seq)
                    try:
                        await store.save_tick(
                            step.canary, step.tick, None, None, expected_tick_seq=current.tick_seq
                        )
                        break
                    except Conflict:
                        conflicts += 1
                else:
                    pytest.fail("a writer never got its tick in")
            return conflicts

        await asyncio.gather(*(writer() for _ in range(10)))
        stored = await store.get_canary("c1")
        assert stored is not None
        assert stored.tick_seq == 100
        assert [t.seq for t in await store.list_ticks("c1")] == list(range(1, 101))
