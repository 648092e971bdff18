"""Rows for the store tests: a registered canary, its next tick (with a decision and outbox row
when there is an action), decisions and outbox rows of their own, a canary saved with a run of
ticks, and a snapshot of every table read past the store."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from analyzer.model import (
    Action,
    Canary,
    Decision,
    Delivery,
    Mode,
    Phase,
    Side,
    Stage,
    Tick,
    Verdict,
)
from analyzer.store.sqlite import SqliteStore
from support.fakes import T0

__all__ = [
    "Step",
    "make_canary",
    "make_decision",
    "make_outbox_row",
    "next_tick",
    "snapshot",
    "with_ticks",
]


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


async def with_ticks(store: SqliteStore, canary: Canary, actions: list[Action | None]) -> Canary:
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
