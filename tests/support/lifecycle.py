"""Builders for the lifecycle's decision tables (Argo Rollouts' assessMetricStatus style): a
canary in a given state, the evaluation a poll produced, and :class:`Row` — (canary state,
evaluation, now) → phase, action, verdict and stage.

:class:`DecisionTable` holds the checks every table gets; a test module lists its rows in a
``Test…(DecisionTable)`` class's ``ROWS`` and each check runs once per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import pytest

from analyzer.model import Action, Canary, JudgeName, Mode, Phase, Side, Stage, Verdict
from analyzer.tick.evaluation import Evaluation, SequentialOutcome
from analyzer.tick.lifecycle import Step, next_step
from judges.labels import Direction, Label
from judges.scorer import ScoreResult, classify_score
from judges.sequential.result import SequentialResult
from judges.threshold import ThresholdResult
from support.fakes import T0, MakeConfig

__all__ = [
    "EARLY",
    "INTERVAL",
    "LATE_EARLY",
    "ONLY_INSTANT",
    "STAGES",
    "STAGE_S",
    "STEP",
    "TWO_TIMED",
    "WARMUP",
    "DecisionTable",
    "Row",
    "canary",
    "decide",
    "judging",
    "kill",
    "nodata",
    "scored",
    "seq",
    "warming",
]

STEP, INTERVAL, WARMUP, STAGE_S = 60.0, 300.0, 120.0, 600.0
STAGES = (
    Stage(weight=10, duration_s=STAGE_S),
    Stage(weight=50, duration_s=STAGE_S),
    Stage(weight=100, duration_s=0),
)
"""Two stages with a minimum time, then full traffic with none: promotion after stage 1."""
TWO_TIMED = (Stage(weight=10, duration_s=STAGE_S), Stage(weight=100, duration_s=STAGE_S))
ONLY_INSTANT = (Stage(weight=100, duration_s=0),)
EARLY = (Stage(weight=10, duration_s=STAGE_S, min_duration_s=120), *STAGES[1:])
"""Stage 0 may end after 2 minutes once every sequential metric has proven itself."""
LATE_EARLY = (Stage(weight=10, duration_s=STAGE_S, min_duration_s=400), *STAGES[1:])


def canary(**changes: Any) -> Canary:
    """A live running canary at stage 0 whose analysis and stage began at T0."""
    base = Canary(
        id="c-1",
        name="checkout-2.3.1",
        service="checkout",
        config_name="test-golden",
        config_hash="h" * 64,
        baseline=Side(labels={"deployment": "checkout-baseline"}),
        canary=Side(labels={"deployment": "checkout-canary"}),
        stages=STAGES,
        webhook_url="https://deploy.internal/hooks/canary",
        created_at=T0 - WARMUP,
        phase=Phase.RUNNING,
        stage_index=0,
        stage_started_at=T0,
        analysis_started_at=T0,
        decision_seq=3,
        tick_seq=7,
        updated_at=T0,
    )
    return replace(base, **changes)


def warming(**changes: Any) -> Canary:
    """A canary registered at T0, still in warm-up."""
    return canary(
        phase=Phase.WARMUP, created_at=T0, analysis_started_at=None, decision_seq=0, **changes
    )


def kill() -> Evaluation:
    """A kill-switch rule crossed its line."""
    tripped = ThresholdResult(
        metric="error_rate",
        label=Label.HIGH,
        reason="error_rate: canary 0.31 > max 0.2",
        canary=0.31,
        baseline=0.01,
    )
    return Evaluation(kill=(tripped,))


def nodata() -> Evaluation:
    """The source returned nothing."""
    return Evaluation(no_data=True, no_data_reason="error_rate: source unavailable")


def judging() -> Evaluation:
    """Kill-switch checked and within its lines; no score this poll."""
    calm = ThresholdResult(
        metric="error_rate", label=Label.PASS, reason="within", canary=0.01, baseline=0.01
    )
    return Evaluation(kill=(calm,))


def scored(score: float, *sequential: SequentialOutcome) -> Evaluation:
    """An interval scored ``score`` (with the sequential metrics' state, if any)."""
    grade = classify_score(score, pass_threshold=75, marginal_threshold=50)
    result = ScoreResult(score=score, groups=(), classification=grade, reason="")
    return Evaluation(score=result, sequential=sequential)


def seq(*, failed: bool = False, proven: bool = False, critical: bool = True) -> SequentialOutcome:
    """A sequential count metric that has failed, proven non-inferiority, or neither yet."""
    result = SequentialResult(
        e_value=41.0 if failed else 0.8,
        estimate=3.1 if failed else 1.0,
        lower=2.1 if failed else 0.9,
        upper=4.0 if failed else 1.1,
        steps=12,
        failed=failed,
        proven=proven,
        threshold=20.0,
        reason="" if failed else "rate ratio within 1.2",
    )
    return SequentialOutcome(
        name="error_rate",
        judge=JudgeName.SEQUENTIAL_COUNT,
        critical=critical,
        direction=Direction.INCREASE,
        result=result,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One row of the decision table."""

    state: Canary
    ev: Evaluation
    at: float
    phase: Phase
    action: Action | None
    verdict: Verdict
    stage: int = 0
    config: dict[str, Any] = field(default_factory=dict)


def decide(row: Row, make_config: MakeConfig, *, mode: Mode = Mode.LIVE) -> Step:
    """next_step on the row, with the 2 m warm-up the builders assume and the row's config."""
    config = make_config(warmup="2m", **row.config)
    return next_step(replace(row.state, mode=mode), config, row.ev, row.at)


class DecisionTable:
    """The checks of a decision table, each run for every row of the subclass's ``ROWS``."""

    ROWS: ClassVar[Mapping[str, Row]] = {}

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``row`` with the table's rows, named by their keys."""
        if "row" in metafunc.fixturenames:
            metafunc.parametrize("row", self.ROWS.values(), ids=self.ROWS.keys())

    def test_decision_table(self, row: Row, make_config: MakeConfig) -> None:
        """Each row decides the phase, action, verdict and stage it lists."""
        step = decide(row, make_config)
        assert step.canary.phase is row.phase
        assert (step.decision.action if step.decision else None) is row.action
        assert step.verdict is row.verdict
        assert step.canary.stage_index == row.stage
        if step.decision is not None:
            assert step.decision.phase_after is row.phase
            assert step.decision.decided_at == row.at
            assert step.canary.last_reason == step.decision.reason == step.reason

    def test_decision_seq_increments_by_one(self, row: Row, make_config: MakeConfig) -> None:
        """A decision takes the next sequence number; no decision leaves it alone."""
        step = decide(row, make_config)
        before = row.state.decision_seq
        if step.decision is None:
            assert step.canary.decision_seq == before
        else:
            assert step.decision.seq == step.canary.decision_seq == before + 1
            assert step.decision.delivery_id == f"c-1:{before + 1}"

    def test_dry_run_decides_the_same(self, row: Row, make_config: MakeConfig) -> None:
        """A dry-run canary is decided exactly as a live one."""
        live = decide(row, make_config)
        dry = decide(row, make_config, mode=Mode.DRY_RUN)
        assert replace(dry.canary, mode=Mode.LIVE) == live.canary
        assert (dry.decision, dry.verdict, dry.reason, dry.score) == (
            live.decision,
            live.verdict,
            live.reason,
            live.score,
        )
