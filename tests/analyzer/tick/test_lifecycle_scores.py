"""The lifecycle's decision table, part two: scored polls — the interval boundary, the end of
a stage, and the early end once every sequential metric has proven itself. (Polls decided
without a score: ``test_lifecycle_polls.py``.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from analyzer.model import Action, Phase, Verdict
from support.fakes import T0
from support.lifecycle import (
    EARLY,
    INTERVAL,
    LATE_EARLY,
    ONLY_INSTANT,
    STAGE_S,
    STEP,
    TWO_TIMED,
    DecisionTable,
    Row,
    canary,
    scored,
    seq,
)


class TestScoreTable(DecisionTable):
    """next_step on polls that score an interval or end a stage."""

    ROWS: ClassVar[Mapping[str, Row]] = {
        # 5. early end: every sequential metric proven, past min_duration, scoring at least pass
        "all-proven-after-min-duration-steps-early": Row(
            state=canary(stages=EARLY),
            ev=scored(90, seq(proven=True)),
            at=T0 + INTERVAL,
            phase=Phase.RUNNING,
            action=Action.STEP,
            verdict=Verdict.PASS,
            stage=1,
        ),
        "all-proven-before-min-duration-waits": Row(
            state=canary(stages=LATE_EARLY),
            ev=scored(90, seq(proven=True)),
            at=T0 + INTERVAL,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        "all-proven-but-below-pass-waits": Row(
            state=canary(stages=EARLY),
            ev=scored(60, seq(proven=True)),
            at=T0 + INTERVAL,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        "not-all-proven-waits": Row(
            state=canary(stages=EARLY),
            ev=scored(90, seq(proven=True), seq(critical=False)),
            at=T0 + INTERVAL,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        # 3. interval boundary
        "interval-below-marginal": Row(
            state=canary(),
            ev=scored(40),
            at=T0 + INTERVAL,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
        ),
        "interval-just-below-marginal": Row(
            state=canary(),
            ev=scored(49.99),
            at=T0 + INTERVAL,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
        ),
        "interval-at-marginal-keeps-going": Row(
            state=canary(),
            ev=scored(50),
            at=T0 + INTERVAL,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        "interval-passing-keeps-stage": Row(
            state=canary(),
            ev=scored(90),
            at=T0 + INTERVAL,
            phase=Phase.RUNNING,
            action=None,
            verdict=Verdict.RUNNING,
        ),
        # 4. end of a stage
        "stage-end-pass-steps": Row(
            state=canary(),
            ev=scored(90),
            at=T0 + STAGE_S,
            phase=Phase.RUNNING,
            action=Action.STEP,
            verdict=Verdict.PASS,
            stage=1,
        ),
        "stage-end-exactly-pass-steps": Row(
            state=canary(),
            ev=scored(75),
            at=T0 + STAGE_S,
            phase=Phase.RUNNING,
            action=Action.STEP,
            verdict=Verdict.PASS,
            stage=1,
        ),
        "stage-end-pass-only-instant-left-promotes": Row(
            state=canary(stage_index=1, stage_started_at=T0 + STAGE_S),
            ev=scored(90),
            at=T0 + 2 * STAGE_S,
            phase=Phase.PROMOTED,
            action=Action.PROMOTE,
            verdict=Verdict.PASS,
            stage=1,
        ),
        "last-stage-pass-promotes": Row(
            state=canary(stages=TWO_TIMED, stage_index=1, stage_started_at=T0 + STAGE_S),
            ev=scored(90),
            at=T0 + 2 * STAGE_S,
            phase=Phase.PROMOTED,
            action=Action.PROMOTE,
            verdict=Verdict.PASS,
            stage=1,
        ),
        "only-instant-stage-promotes-at-first-score": Row(
            state=canary(stages=ONLY_INSTANT),
            ev=scored(90),
            at=T0 + STEP,
            phase=Phase.PROMOTED,
            action=Action.PROMOTE,
            verdict=Verdict.PASS,
        ),
        "stage-end-marginal-pauses": Row(
            state=canary(),
            ev=scored(60),
            at=T0 + STAGE_S,
            phase=Phase.PAUSED,
            action=Action.PAUSE,
            verdict=Verdict.INCONCLUSIVE,
        ),
        "stage-end-marginal-rolls-back": Row(
            state=canary(),
            ev=scored(60),
            at=T0 + STAGE_S,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
            config={"on_inconclusive": "rollback"},
        ),
        "stage-end-fail-rolls-back": Row(
            state=canary(),
            ev=scored(10),
            at=T0 + STAGE_S,
            phase=Phase.ROLLED_BACK,
            action=Action.ROLLBACK,
            verdict=Verdict.FAIL,
        ),
    }
