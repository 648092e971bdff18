"""The lifecycle's decision table, part one: the polls decided whatever the score — warm-up,
the kill-switch, sequential failures, missing data, the polls between intervals and the phases
that are not judged. (Scored polls: ``test_lifecycle_scores.py``.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from analyzer.model import Action, Phase, Verdict
from analyzer.tick.evaluation import Evaluation
from support.fakes import T0
from support.lifecycle import (
    INTERVAL,
    STAGE_S,
    WARMUP,
    DecisionTable,
    Row,
    canary,
    judging,
    kill,
    nodata,
    scored,
    seq,
    warming,
)


class TestPollTable(DecisionTable):
    """next_step on polls that need no score: the rows decide before any interval does."""

    ROWS: ClassVar[Mapping[str, Row]] = {
        # warm-up
        "warmup-not-over": Row(
            state=warming(),
            ev=Evaluation(),
            at=T0 + 60,
            phase=Phase.WARMUP,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        "warmup-over-starts-analysis": Row(
            state=warming(),
            ev=Evaluation(),
            at=T0 + WARMUP,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        "warmup-ignores-kill-switch": Row(
            state=warming(),
            ev=kill(),
            at=T0 + 30,
            phase=Phase.WARMUP,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        # 1. kill-switch: at once, even mid-stage and between intervals
        "kill-mid-stage": Row(
            state=canary(),
            ev=kill(),
            at=T0 + 30,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
        ),
        "kill-in-stage-1": Row(
            state=canary(stage_index=1, stage_started_at=T0 + STAGE_S),
            ev=kill(),
            at=T0 + 700,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
            stage=1,
        ),
        # 2. sequential metrics: a critical failure rolls back at once, a non-critical one waits
        "critical-sequential-fails-mid-stage": Row(
            state=canary(),
            ev=Evaluation(sequential=(seq(failed=True),)),
            at=T0 + 120,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
        ),
        "noncritical-sequential-fail-waits-for-the-score": Row(
            state=canary(),
            ev=Evaluation(sequential=(seq(failed=True, critical=False),)),
            at=T0 + 120,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        # no data
        "nodata-hold": Row(
            state=canary(),
            ev=nodata(),
            at=T0 + INTERVAL,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.NONE,
        ),
        "nodata-hold-stage-deadline-pauses": Row(
            state=canary(),
            ev=nodata(),
            at=T0 + STAGE_S,
            phase=Phase.PAUSED,
            action=Action.PAUSE,
            verdict=Verdict.INCONCLUSIVE,
        ),
        "nodata-hold-stage-deadline-rolls-back": Row(
            state=canary(),
            ev=nodata(),
            at=T0 + STAGE_S,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
            config={"on_inconclusive": "rollback"},
        ),
        "nodata-rollback": Row(
            state=canary(),
            ev=nodata(),
            at=T0 + 60,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
            config={"on_no_data": "rollback"},
        ),
        # between intervals: nothing to score
        "judging-between-intervals": Row(
            state=canary(),
            ev=judging(),
            at=T0 + 120,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        # phases that are not judged
        "paused-not-judged": Row(
            state=canary(phase=Phase.PAUSED, paused_from=Phase.RUNNING, paused_at=T0 + 60),
            ev=kill(),
            at=T0 + 120,
            phase=Phase.PAUSED,
            action=None,
            verdict=Verdict.NONE,
        ),
        "promoted-not-judged": Row(
            state=canary(phase=Phase.PROMOTED),
            ev=kill(),
            at=T0 + 120,
            phase=Phase.PROMOTED,
            action=None,
            verdict=Verdict.NONE,
        ),
        "rolled-back-not-judged": Row(
            state=canary(phase=Phase.ROLLED_BACK),
            ev=scored(90),
            at=T0 + STAGE_S,
            phase=Phase.ROLLED_BACK,
            action=None,
            verdict=Verdict.NONE,
        ),
    }
