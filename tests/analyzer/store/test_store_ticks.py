"""SqliteStore.save_tick and save_decision: each one transaction, fenced by the expected
sequence numbers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.errors import Conflict, NotFound, StoreError
from analyzer.model import Action, Phase
from analyzer.store.sqlite import SqliteStore
from support.fakes import T0
from support.store_rows import (
    make_canary,
    make_decision,
    make_outbox_row,
    next_tick,
    snapshot,
    with_ticks,
)


class TestSaveTick:
    """save_tick: the canary, the tick, the decision and its outbox row in one transaction."""

    async def test_tick_decision_and_delivery_round_trip(self, store: SqliteStore) -> None:
        """Everything save_tick writes reads back equal."""
        canary = make_canary()
        await store.create_canary(canary, {})
        step = next_tick(canary, T0 + 60, Action.STEP)
        await store.save_tick(
            step.canary, step.tick, step.decision, step.delivery, expected_tick_seq=0
        )
        assert await store.get_canary(canary.id) == step.canary
        assert await store.list_ticks(canary.id) == [step.tick]
        assert await store.list_decisions(canary.id) == [step.decision]
        assert await store.list_deliveries(canary.id) == [step.delivery]

    async def test_ticks_without_decisions(self, store: SqliteStore) -> None:
        """Plain ticks are kept in order; list_ticks returns the newest ``limit`` oldest first."""
        canary = await with_ticks(store, make_canary(), [None] * 5)
        assert canary.tick_seq == 5
        assert [t.seq for t in await store.list_ticks(canary.id, limit=3)] == [3, 4, 5]
        assert await store.list_decisions(canary.id) == []

    async def test_failure_inside_writes_nothing(self, store: SqliteStore, db_path: Path) -> None:
        """An outbox row that does not match its decision aborts the whole transaction."""
        canary = make_canary()
        await store.create_canary(canary, {})
        before = snapshot(db_path)
        step = next_tick(canary, T0 + 60, Action.ROLLBACK)
        assert step.delivery is not None
        orphan = replace(step.delivery, seq=99, delivery_id="c1:99")
        with pytest.raises(StoreError, match="FOREIGN KEY"):
            await store.save_tick(
                step.canary, step.tick, step.decision, orphan, expected_tick_seq=0
            )
        assert snapshot(db_path) == before

    async def test_delivery_without_decision_is_refused(self, store: SqliteStore) -> None:
        """An outbox row needs its decision in the same call."""
        canary = make_canary()
        await store.create_canary(canary, {})
        step = next_tick(canary, T0 + 60, Action.STEP)
        with pytest.raises(StoreError, match="decision"):
            await store.save_tick(step.canary, step.tick, None, step.delivery, expected_tick_seq=0)

    async def test_unknown_canary(self, store: SqliteStore) -> None:
        """A tick for a canary that was never created raises NotFound."""
        step = next_tick(make_canary(), T0 + 60)
        with pytest.raises(NotFound):
            await store.save_tick(step.canary, step.tick, None, None, expected_tick_seq=0)


class TestFencing:
    """Fenced writes: a stale writer raises Conflict and writes nothing in any table."""

    async def test_stale_tick_seq(self, store: SqliteStore, db_path: Path) -> None:
        """A tick computed from an older tick_seq conflicts."""
        canary = make_canary()
        await store.create_canary(canary, {})
        first = next_tick(canary, T0 + 60)
        await store.save_tick(first.canary, first.tick, None, None, expected_tick_seq=0)
        before = snapshot(db_path)
        stale = next_tick(canary, T0 + 61, Action.ROLLBACK)
        with pytest.raises(Conflict, match="tick_seq"):
            await store.save_tick(
                stale.canary, stale.tick, stale.decision, stale.delivery, expected_tick_seq=0
            )
        assert snapshot(db_path) == before

    async def test_tick_after_an_out_of_tick_decision(
        self, store: SqliteStore, db_path: Path
    ) -> None:
        """A tick judged before an abort landed cannot overwrite the abort."""
        canary = make_canary()
        await store.create_canary(canary, {})
        abort = make_decision(canary, T0 + 30, Action.ABORT)
        aborted = replace(canary, phase=Phase.ABORTED, decision_seq=abort.seq)
        await store.save_decision(aborted, abort, None, expected_decision_seq=0)
        before = snapshot(db_path)
        late = next_tick(canary, T0 + 60, Action.STEP)
        with pytest.raises(Conflict):
            await store.save_tick(
                late.canary, late.tick, late.decision, late.delivery, expected_tick_seq=0
            )
        assert snapshot(db_path) == before

    async def test_stale_decision_seq(self, store: SqliteStore, db_path: Path) -> None:
        """Two out-of-tick decisions from the same state: the second conflicts."""
        canary = make_canary()
        await store.create_canary(canary, {})
        pause = make_decision(canary, T0 + 1, Action.PAUSE)
        promote = make_decision(canary, T0 + 2, Action.PROMOTE)
        await store.save_decision(
            replace(canary, decision_seq=1), pause, None, expected_decision_seq=0
        )
        before = snapshot(db_path)
        with pytest.raises(Conflict, match="decision_seq"):
            await store.save_decision(
                replace(canary, decision_seq=1),
                promote,
                make_outbox_row(promote, T0 + 2),
                expected_decision_seq=0,
            )
        assert snapshot(db_path) == before

    async def test_decision_after_a_tick_moved_on(self, store: SqliteStore, db_path: Path) -> None:
        """An out-of-tick decision based on a canary a tick has since changed conflicts."""
        canary = await with_ticks(store, make_canary(), [])
        step = next_tick(canary, T0 + 60)
        await store.save_tick(step.canary, step.tick, None, None, expected_tick_seq=0)
        before = snapshot(db_path)
        abort = make_decision(canary, T0 + 61, Action.ABORT)
        with pytest.raises(Conflict):
            await store.save_decision(
                replace(canary, decision_seq=1), abort, None, expected_decision_seq=0
            )
        assert snapshot(db_path) == before

    async def test_save_decision_writes_decision_and_outbox(self, store: SqliteStore) -> None:
        """A fresh out-of-tick decision is stored with its delivery and the new canary."""
        canary = make_canary()
        await store.create_canary(canary, {})
        promote = make_decision(canary, T0 + 5, Action.PROMOTE)
        after = replace(canary, phase=Phase.PROMOTED, decision_seq=promote.seq)
        row = make_outbox_row(promote, T0 + 5)
        await store.save_decision(after, promote, row, expected_decision_seq=0)
        assert await store.get_canary(canary.id) == after
        assert await store.list_decisions(canary.id) == [promote]
        assert await store.list_deliveries(canary.id) == [row]
