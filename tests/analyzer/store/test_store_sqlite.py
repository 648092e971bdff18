"""SqliteStore: round trips, fenced atomic writes, the outbox queue, reopening, concurrency."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analyzer.errors import Conflict, NotFound, StoreError
from analyzer.model import (
    Action,
    Canary,
    Decision,
    Delivery,
    DeliveryState,
    Mode,
    Phase,
    Side,
    Stage,
    Tick,
    Verdict,
)
from analyzer.store.codec import dump_json, load_json
from analyzer.store.protocol import ConfigVersion
from analyzer.store.sqlite import SqliteStore

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def make_canary(canary_id: str = "c1", **changes: Any) -> Canary:
    """A registered live canary with three stages, overridable field by field."""
    created_at = changes.pop("created_at", T0)
    canary = Canary(
        id=canary_id,
        name="checkout-2.3.1",
        service="checkout",
        config_name="http-golden-signals",
        config_hash="ab" * 32,
        baseline=Side(labels={"deployment": "checkout-baseline"}),
        canary=Side(labels={"deployment": "checkout-canary"}, targets=("http://10.0.0.7:9102",)),
        stages=(
            Stage(weight=5.0, duration_s=600.0),
            Stage(weight=25.0, duration_s=600.0),
            Stage(weight=100.0, duration_s=0.0),
        ),
        webhook_url="https://deploy.internal/hooks/canary",
        mode=Mode.LIVE,
        metadata={"commit": "abc123", "nested": {"n": 1}},
        variables={"cluster": "eu-1"},
        created_at=created_at,
        stage_started_at=created_at,
    )
    return replace(canary, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What one tick writes: the canary after it, the tick, and maybe a decision + delivery."""

    canary: Canary
    tick: Tick
    decision: Decision | None
    delivery: Delivery | None
    expected_tick_seq: int


def next_tick(canary: Canary, at: float, action: Action | None = None) -> Step:
    """The next tick of ``canary`` at ``at``, with a decision (and outbox row) if ``action``."""
    seq = canary.tick_seq + 1
    tick = Tick(
        canary_id=canary.id,
        seq=seq,
        at=at,
        phase=Phase.RUNNING,
        stage_index=canary.stage_index,
        verdict=Verdict.RUNNING if action is None else Verdict.PASS,
        score=87.5,
        reason=f"tick {seq}",
        results={"error_rate": {"e": 1.5, "label": "Pass", "ci": [0.9, 1.1]}},
        duration_s=0.012,
    )
    after = replace(canary, tick_seq=seq, phase=Phase.RUNNING, updated_at=at, last_score=87.5)
    if action is None:
        return Step(
            canary=after, tick=tick, decision=None, delivery=None, expected_tick_seq=seq - 1
        )
    decision = make_decision(after, at, action)
    after = replace(after, decision_seq=decision.seq)
    delivery = make_outbox_row(decision, at)
    return Step(
        canary=after, tick=tick, decision=decision, delivery=delivery, expected_tick_seq=seq - 1
    )


def make_decision(canary: Canary, at: float, action: Action = Action.STEP) -> Decision:
    """The canary's next decision (``seq`` = ``decision_seq`` + 1)."""
    return Decision(
        canary_id=canary.id,
        seq=canary.decision_seq + 1,
        action=action,
        reason=f"{action.value} at {at}",
        score=90.0,
        stage_index=canary.stage_index,
        weight=canary.stage.weight,
        decided_at=at,
        phase_after=Phase.RUNNING,
        evidence={"score": 90.0},
    )


def make_outbox_row(decision: Decision, at: float) -> Delivery:
    """A pending outbox row for ``decision``, due at ``at``."""
    return Delivery(
        delivery_id=decision.delivery_id,
        canary_id=decision.canary_id,
        seq=decision.seq,
        event=decision.action.value,
        url="https://deploy.internal/hooks/canary",
        body=b'{"event":"%s"}' % decision.action.value.encode(),
        next_attempt_at=at,
        created_at=at,
    )


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read through a separate connection."""
    with sqlite3.connect(path) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
    conn.close()
    return rows


async def _with_ticks(store: SqliteStore, canary: Canary, actions: list[Action | None]) -> Canary:
    """Create ``canary`` and save one tick per entry (a decision where the entry is an action)."""
    await store.create_canary(canary, {"name": canary.name})
    for i, action in enumerate(actions):
        step = next_tick(canary, T0 + 60.0 * (i + 1), action)
        await store.save_tick(
            step.canary,
            step.tick,
            step.decision,
            step.delivery,
            expected_tick_seq=step.expected_tick_seq,
        )
        canary = step.canary
    return canary


class TestLifecycle:
    """Opening and closing."""

    async def test_use_before_open_fails(self, db_path: Path) -> None:
        """A store that was never opened raises StoreError."""
        with pytest.raises(StoreError, match="not open"):
            await SqliteStore(str(db_path)).list_canaries()

    async def test_use_after_close_fails(self, db_path: Path) -> None:
        """A closed store raises StoreError; closing twice is harmless."""
        store = SqliteStore(str(db_path))
        await store.open()
        await store.close()
        await store.close()
        with pytest.raises(StoreError, match="not open"):
            await store.get_canary("c1")

    async def test_unopenable_path_is_a_store_error(self, tmp_path: Path) -> None:
        """A path that cannot be a database file raises StoreError, not sqlite3's error."""
        store = SqliteStore(str(tmp_path / "missing-dir" / "canaryd.db"))
        with pytest.raises(StoreError, match="sqlite"):
            await store.open()


class TestConfigs:
    """Config versions and the current pointer per name."""

    async def test_current_version_follows_latest_put(self, store: SqliteStore) -> None:
        """put_config makes the new version current; the old stays reachable by hash."""
        v1 = ConfigVersion(name="golden", hash="h1", body={"alpha": 0.05}, created_at=T0)
        v2 = ConfigVersion(name="golden", hash="h2", body={"alpha": 0.01}, created_at=T0 + 1)
        await store.put_config(v1)
        await store.put_config(v2)
        assert await store.get_config("golden") == v2
        assert await store.get_config_version("h1") == v1
        assert await store.list_configs() == [v2]

    async def test_putting_an_old_version_again_makes_it_current(self, store: SqliteStore) -> None:
        """Re-putting a stored version keeps its first created_at and makes it current."""
        v1 = ConfigVersion(name="golden", hash="h1", body={"a": 1}, created_at=T0)
        v2 = ConfigVersion(name="golden", hash="h2", body={"a": 2}, created_at=T0 + 1)
        for version in (v1, v2, replace(v1, created_at=T0 + 2)):
            await store.put_config(version)
        assert await store.get_config("golden") == v1

    async def test_unknown_names_and_hashes(self, store: SqliteStore) -> None:
        """Unknown configs read as None; list_configs is sorted by name."""
        assert await store.get_config("nope") is None
        assert await store.get_config_version("nope") is None
        for name in ("b", "a"):
            await store.put_config(ConfigVersion(name=name, hash=name, body={}, created_at=T0))
        assert [c.name for c in await store.list_configs()] == ["a", "b"]


class TestCanaries:
    """Creating, reading and listing canaries."""

    async def test_round_trip(self, store: SqliteStore) -> None:
        """Every Canary field survives storage, including optional and nested ones."""
        canary = make_canary(
            mode=Mode.DRY_RUN,
            phase=Phase.PAUSED,
            paused_from=Phase.RUNNING,
            analysis_started_at=T0 + 30.5,
            last_score=61.25,
            last_reason="score 61.25 < 75",
            webhook_url=None,
        )
        registration = {"name": canary.name, "stages": [{"weight": 5, "duration": "10m"}]}
        await store.create_canary(canary, registration)
        assert await store.get_canary(canary.id) == canary
        assert await store.get_registration(canary.id) == registration

    async def test_duplicate_id_conflicts(self, store: SqliteStore) -> None:
        """Creating a canary twice raises Conflict and keeps the first."""
        await store.create_canary(make_canary(), {})
        with pytest.raises(Conflict):
            await store.create_canary(make_canary(name="other"), {})
        stored = await store.get_canary("c1")
        assert stored is not None
        assert stored.name == "checkout-2.3.1"

    async def test_list_newest_first_and_by_phase(self, store: SqliteStore) -> None:
        """list_canaries orders newest first and filters by phase."""
        await store.create_canary(make_canary("old", created_at=T0), {})
        await store.create_canary(make_canary("new", created_at=T0 + 5, phase=Phase.RUNNING), {})
        await store.create_canary(make_canary("mid", created_at=T0 + 1), {})
        assert [c.id for c in await store.list_canaries()] == ["new", "mid", "old"]
        assert [c.id for c in await store.list_canaries(Phase.RUNNING)] == ["new"]
        assert await store.get_canary("absent") is None
        assert await store.get_registration("absent") is None


class TestCodec:
    """JSON columns: numpy values, non-finite numbers, malformed rows."""

    def test_numpy_values_become_plain_json(self) -> None:
        """numpy scalars and arrays are written as plain numbers and lists."""
        text = dump_json({"p": np.float64(0.25), "n": np.int64(3), "xs": np.array([1.0, 2.5])})
        assert load_json(text) == {"p": 0.25, "n": 3, "xs": [1.0, 2.5]}

    def test_unstorable_value_is_rejected(self) -> None:
        """An object with no JSON form raises TypeError."""
        with pytest.raises(TypeError, match="object"):
            dump_json({"x": object()})

    async def test_results_with_numpy_and_nan_round_trip(self, store: SqliteStore) -> None:
        """A tick's results keep NaN and come back with numpy values as plain numbers."""
        canary = make_canary()
        await store.create_canary(canary, {})
        step = next_tick(canary, T0 + 60)
        tick = replace(step.tick, results={"p": np.float64(math.nan), "xs": np.arange(3)})
        await store.save_tick(step.canary, tick, None, None, expected_tick_seq=0)
        (stored,) = await store.list_ticks(canary.id)
        assert math.isnan(stored.results["p"])
        assert stored.results["xs"] == [0, 1, 2]

    async def test_malformed_row_is_a_store_error(self, store: SqliteStore, db_path: Path) -> None:
        """A row whose JSON or enum does not decode raises StoreError."""
        await store.create_canary(make_canary(), {})
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE canaries SET phase = 'sideways'")
        conn.close()
        with pytest.raises(StoreError, match="sideways"):
            await store.get_canary("c1")


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
        canary = await _with_ticks(store, make_canary(), [None] * 5)
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
        canary = await _with_ticks(store, make_canary(), [])
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


class TestOutbox:
    """The outbox queue: due lookups per canary in decision order, updates, counts."""

    async def test_one_per_canary_oldest_first(self, store: SqliteStore) -> None:
        """Only each canary's oldest pending delivery is due; canaries come oldest first."""
        await _with_ticks(store, make_canary("b"), [Action.STEP, Action.STEP])
        await _with_ticks(store, make_canary("a", created_at=T0 + 30), [None, Action.STEP])
        due = await store.due_deliveries(T0 + 1000)
        assert [d.delivery_id for d in due] == ["b:1", "a:1"]
        assert [d.delivery_id for d in await store.due_deliveries(T0 + 1000, limit=1)] == ["b:1"]

    async def test_nothing_before_next_attempt_at(self, store: SqliteStore) -> None:
        """A head delivery that is not yet due holds back its canary's later ones."""
        await _with_ticks(store, make_canary(), [Action.STEP, Action.PROMOTE])
        (head, _) = await store.list_deliveries("c1")
        assert await store.due_deliveries(T0 + 59) == []
        await store.update_delivery(replace(head, attempts=1, next_attempt_at=T0 + 500))
        assert await store.due_deliveries(T0 + 499) == []
        assert [d.delivery_id for d in await store.due_deliveries(T0 + 500)] == ["c1:1"]

    async def test_finished_head_releases_the_next(self, store: SqliteStore) -> None:
        """Once the head is delivered or failed, the next delivery of the canary is due."""
        await _with_ticks(store, make_canary(), [Action.STEP, Action.STEP, Action.PROMOTE])
        first, second, _ = await store.list_deliveries("c1")
        await store.update_delivery(
            replace(first, state=DeliveryState.DELIVERED, attempts=1, delivered_at=T0 + 61)
        )
        assert [d.delivery_id for d in await store.due_deliveries(T0 + 999)] == ["c1:2"]
        await store.update_delivery(replace(second, state=DeliveryState.FAILED, last_error="410"))
        assert [d.delivery_id for d in await store.due_deliveries(T0 + 999)] == ["c1:3"]

    async def test_update_round_trip_and_counts(self, store: SqliteStore) -> None:
        """update_delivery stores every outcome field; delivery_counts counts each state."""
        await _with_ticks(store, make_canary(), [Action.STEP, Action.STEP])
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


class TestReopen:
    """Durability across close and reopen."""

    async def test_everything_survives_reopen(self, db_path: Path) -> None:
        """Canaries, configs, ticks, decisions and deliveries read back the same after reopening."""
        first = SqliteStore(str(db_path))
        await first.open()
        config = ConfigVersion(name="golden", hash="h", body={"metrics": []}, created_at=T0)
        await first.put_config(config)
        canary = await _with_ticks(first, make_canary(), [None, Action.STEP, Action.ROLLBACK])
        saved = (
            await first.list_ticks("c1"),
            await first.list_decisions("c1"),
            await first.list_deliveries("c1"),
        )
        await first.close()
        second = SqliteStore(str(db_path))
        await second.open()
        assert await second.get_canary("c1") == canary
        assert await second.get_config("golden") == config
        assert saved == (
            await second.list_ticks("c1"),
            await second.list_decisions("c1"),
            await second.list_deliveries("c1"),
        )
        await second.close()


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
