"""The pure decision of a poll, asserted as tables (Argo Rollouts' assessMetricStatus style):
rows of (canary state, evaluation, now) → phase, action, verdict and stage."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.errors import Conflict
from analyzer.model import Action, Canary, JudgeName, Mode, Phase, Side, Stage, Verdict
from analyzer.tick.evaluation import Evaluation, SequentialOutcome
from analyzer.tick.lifecycle import (
    apply_action,
    interval_index,
    next_step,
    stage_ends_at,
    wants_score,
)
from analyzer.webhooks.message import make_delivery
from judges.labels import Direction, Label
from judges.scorer import ScoreResult, classify_score
from judges.sequential.result import SequentialResult
from judges.threshold import ThresholdResult
from support.fakes import T0, MakeConfig

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


@pytest.fixture
def config(make_config: MakeConfig) -> JudgeConfig:
    """step 60 s, interval 5 m, warm-up 2 m, pass 75, marginal 50, hold, pause."""
    return make_config(warmup="2m")


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


ROWS = {
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


def _decide(row: Row, make_config: MakeConfig, *, mode: Mode = Mode.LIVE) -> Any:
    config = make_config(warmup="2m", **row.config)
    return next_step(replace(row.state, mode=mode), config, row.ev, row.at)


class TestNextStep:
    """next_step: the table, and what each kind of decision does to the canary."""

    @pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
    def test_decision_table(self, row: Row, make_config: MakeConfig) -> None:
        """Each row decides the phase, action, verdict and stage it lists."""
        step = _decide(row, make_config)
        assert step.canary.phase is row.phase
        assert (step.decision.action if step.decision else None) is row.action
        assert step.verdict is row.verdict
        assert step.canary.stage_index == row.stage
        if step.decision is not None:
            assert step.decision.phase_after is row.phase
            assert step.decision.decided_at == row.at
            assert step.canary.last_reason == step.decision.reason == step.reason

    @pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
    def test_decision_seq_increments_by_one(self, row: Row, make_config: MakeConfig) -> None:
        """A decision takes the next sequence number; no decision leaves it alone."""
        step = _decide(row, make_config)
        before = row.state.decision_seq
        if step.decision is None:
            assert step.canary.decision_seq == before
        else:
            assert step.decision.seq == step.canary.decision_seq == before + 1
            assert step.decision.delivery_id == f"c-1:{before + 1}"

    @pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
    def test_dry_run_decides_the_same(self, row: Row, make_config: MakeConfig) -> None:
        """A dry-run canary is decided exactly as a live one."""
        live = _decide(row, make_config)
        dry = _decide(row, make_config, mode=Mode.DRY_RUN)
        assert replace(dry.canary, mode=Mode.LIVE) == live.canary
        assert (dry.decision, dry.verdict, dry.reason, dry.score) == (
            live.decision,
            live.verdict,
            live.reason,
            live.score,
        )

    def test_warmup_end_starts_the_analysis_and_the_stage_clock(self, config: JudgeConfig) -> None:
        """Leaving warm-up sets analysis_started_at and stage_started_at to now."""
        step = next_step(warming(), config, Evaluation(), T0 + 150)
        assert step.canary.analysis_started_at == T0 + 150
        assert step.canary.stage_started_at == T0 + 150
        assert step.canary.intervals_scored == 0
        assert step.decision is None

    def test_kill_switch_reason_names_the_rule(self, config: JudgeConfig) -> None:
        """The rollback says which kill-switch rule tripped, and sends the canary to weight 0."""
        step = next_step(canary(stage_index=1), config, kill(), T0 + 30)
        assert step.decision is not None
        assert step.decision.reason.startswith("kill-switch: error_rate: canary 0.31 > max 0.2")
        assert step.decision.weight == 0.0
        assert step.decision.stage_index == 1

    def test_hold_leaves_the_canary_untouched(self, config: JudgeConfig) -> None:
        """Holding on no data changes no state and says why."""
        state = canary()
        step = next_step(state, config, nodata(), T0 + 120)
        assert step.canary == state
        assert "no data, holding" in step.reason
        assert "source unavailable" in step.reason

    def test_a_score_zeroed_by_missing_data_holds(self, make_config: MakeConfig) -> None:
        """Kayenta's Nodata rule zeroes the score, but with on_no_data hold canaryd holds."""
        grade = classify_score(0.0, pass_threshold=75, marginal_threshold=50)
        zeroed = ScoreResult(
            score=0.0,
            groups=(),
            classification=grade,
            reason="2 of 3 metrics returned no data",
            forced_by_no_data=True,
        )
        state = canary()
        step = next_step(state, make_config(), Evaluation(score=zeroed), T0 + 120)
        assert step.decision is None
        assert step.verdict is Verdict.NONE
        assert "no data, holding" in step.reason
        rolled = next_step(
            state, make_config(on_no_data="rollback"), Evaluation(score=zeroed), T0 + 120
        )
        assert rolled.decision is not None
        assert rolled.decision.action is Action.ROLLBACK

    def test_proven_sequential_metrics_end_the_stage_between_intervals(
        self, config: JudgeConfig
    ) -> None:
        """Early promotion is decided on every poll, not only when an interval is scored."""
        state = canary(stages=(Stage(weight=10, duration_s=600, min_duration_s=60), *STAGES[1:]))
        early = Evaluation(sequential=(seq(proven=True),))
        assert next_step(state, config, early, T0 + 30).decision is None
        step = next_step(state, config, early, T0 + 90)
        assert step.decision is not None
        assert step.decision.action is Action.STEP
        assert "early" in step.decision.reason

    def test_step_moves_to_the_next_weight_and_resets_the_stage_timer(
        self, config: JudgeConfig
    ) -> None:
        """Passing stage 0 moves to stage 1 at weight 50 with a fresh stage_started_at."""
        step = next_step(canary(), config, scored(90), T0 + STAGE_S + 5)
        assert step.decision is not None
        assert step.decision.weight == 50
        assert step.decision.stage_index == 1
        assert step.canary.stage_started_at == T0 + STAGE_S + 5
        assert step.canary.analysis_started_at == T0
        assert "stepping to 50%" in step.decision.reason
        assert step.canary.last_score == 90

    def test_promote_sends_full_weight(self, config: JudgeConfig) -> None:
        """Promotion's decision carries weight 100."""
        state = canary(stage_index=1, stage_started_at=T0 + STAGE_S)
        step = next_step(state, config, scored(80), T0 + 2 * STAGE_S)
        assert step.decision is not None
        assert step.decision.action is Action.PROMOTE
        assert step.decision.weight == 100.0

    def test_inconclusive_pause_records_when_and_from_where(self, config: JudgeConfig) -> None:
        """An inconclusive pause remembers the phase and the time it paused at."""
        step = next_step(canary(), config, scored(60), T0 + STAGE_S)
        assert step.canary.paused_from is Phase.RUNNING
        assert step.canary.paused_at == T0 + STAGE_S
        assert step.reason.startswith("inconclusive, paused for a human")

    def test_a_scored_interval_is_not_scored_again(self, config: JudgeConfig) -> None:
        """Scoring at a boundary records the interval, so the same poll no longer wants one."""
        state = canary()
        assert wants_score(state, config, T0 + INTERVAL)
        step = next_step(state, config, scored(90), T0 + INTERVAL)
        assert step.canary.intervals_scored == 1
        assert not wants_score(step.canary, config, T0 + INTERVAL + STEP)
        assert wants_score(step.canary, config, T0 + 2 * INTERVAL)

    def test_a_chain_of_decisions_numbers_them_one_by_one(self, config: JudgeConfig) -> None:
        """step, step, promote: sequence numbers 1, 2, 3 and stage times that follow."""
        state = canary(stages=(*TWO_TIMED[:1], Stage(weight=50, duration_s=STAGE_S), TWO_TIMED[1]))
        state = replace(state, decision_seq=0)
        actions, seqs = [], []
        at = T0
        for _ in range(3):
            at += STAGE_S
            step = next_step(state, config, scored(95), at)
            assert step.decision is not None
            actions.append(step.decision.action)
            seqs.append(step.decision.seq)
            state = step.canary
        assert actions == [Action.STEP, Action.STEP, Action.PROMOTE]
        assert seqs == [1, 2, 3]
        assert state.phase is Phase.PROMOTED


class TestManualActions:
    """apply_action: which actions fit which phase, and what resume does to the timers."""

    @pytest.mark.parametrize(
        ("phase", "action", "after"),
        [
            (Phase.RUNNING, Action.ABORT, Phase.ABORTED),
            (Phase.WARMUP, Action.ABORT, Phase.ABORTED),
            (Phase.PAUSED, Action.ABORT, Phase.ABORTED),
            (Phase.RUNNING, Action.PROMOTE, Phase.PROMOTED),
            (Phase.PAUSED, Action.PROMOTE, Phase.PROMOTED),
            (Phase.RUNNING, Action.PAUSE, Phase.PAUSED),
            (Phase.WARMUP, Action.PAUSE, Phase.PAUSED),
            (Phase.PAUSED, Action.RESUME, Phase.RUNNING),
            (Phase.RUNNING, Action.ROLLBACK, Phase.ROLLED_BACK),
        ],
    )
    def test_allowed(self, phase: Phase, action: Action, after: Phase) -> None:
        """An action that fits the phase is decided, numbered and leads to its phase."""
        paused = (
            {"paused_from": Phase.RUNNING, "paused_at": T0 + 60} if phase is Phase.PAUSED else {}
        )
        state = canary(phase=phase, **paused)
        step = apply_action(state, action, T0 + 120, "by hand")
        assert step.decision is not None
        assert step.decision.action is action
        assert step.decision.seq == state.decision_seq + 1
        assert step.decision.reason == "by hand"
        assert step.canary.phase is after

    @pytest.mark.parametrize(
        ("phase", "action"),
        [
            (Phase.RUNNING, Action.RESUME),
            (Phase.WARMUP, Action.RESUME),
            (Phase.PROMOTED, Action.ABORT),
            (Phase.ROLLED_BACK, Action.PROMOTE),
            (Phase.ABORTED, Action.RESUME),
            (Phase.PAUSED, Action.PAUSE),
            (Phase.PROMOTED, Action.PAUSE),
            (Phase.RUNNING, Action.STEP),
        ],
    )
    def test_conflict(self, phase: Phase, action: Action) -> None:
        """An action that does not fit the phase is a Conflict naming both."""
        with pytest.raises(Conflict, match=f"cannot {action} a canary that is {phase}"):
            apply_action(canary(phase=phase), action, T0 + 60, "by hand")

    @pytest.mark.parametrize("phase", list(Phase))
    def test_a_step_is_never_manual(self, phase: Phase) -> None:
        """Stepping to the next stage is the lifecycle's decision: by hand it is a Conflict."""
        with pytest.raises(Conflict, match=f"cannot step a canary that is {phase}"):
            apply_action(canary(phase=phase), Action.STEP, T0 + 60, "by hand")

    @pytest.mark.parametrize(
        ("action", "weight", "verdict"),
        [
            (Action.ROLLBACK, 0.0, Verdict.FAIL),
            (Action.PROMOTE, 100.0, Verdict.PASS),
            (Action.PAUSE, 10.0, Verdict.INCONCLUSIVE),
            (Action.ABORT, 10.0, Verdict.PASS),
        ],
    )
    def test_weight_and_verdict_per_action(
        self, action: Action, weight: float, verdict: Verdict
    ) -> None:
        """Rollback sends no traffic, promotion all of it, others keep the stage's weight."""
        step = apply_action(canary(), action, T0 + 60, "by hand")
        assert step.decision is not None
        assert (step.decision.weight, step.verdict) == (weight, verdict)

    def test_pause_remembers_the_phase_it_paused(self) -> None:
        """Pausing in warm-up resumes into warm-up."""
        paused = apply_action(warming(), Action.PAUSE, T0 + 30, "hold on").canary
        assert (paused.paused_from, paused.paused_at) == (Phase.WARMUP, T0 + 30)
        resumed = apply_action(paused, Action.RESUME, T0 + 90, "go").canary
        assert resumed.phase is Phase.WARMUP
        assert (resumed.paused_from, resumed.paused_at) == (None, None)

    def test_resume_shifts_the_stage_timer_by_the_pause(self) -> None:
        """Paused 100 s into a stage for 300 s: the stage now ends 300 s later."""
        paused = apply_action(canary(), Action.PAUSE, T0 + 100, "look").canary
        step = apply_action(paused, Action.RESUME, T0 + 400, "carry on")
        assert step.verdict is Verdict.RUNNING
        assert step.canary.phase is Phase.RUNNING
        assert step.canary.stage_started_at == T0 + 300
        assert stage_ends_at(step.canary) == T0 + STAGE_S + 300

    def test_resume_after_an_inconclusive_pause_gives_a_fresh_stage(
        self, config: JudgeConfig
    ) -> None:
        """A pause taken at the stage deadline resumes with the full stage time from now."""
        paused = next_step(canary(), config, scored(60), T0 + STAGE_S).canary
        resumed = apply_action(paused, Action.RESUME, T0 + 5000, "more evidence").canary
        assert resumed.phase is Phase.RUNNING
        assert resumed.stage_index == 0
        assert resumed.stage_started_at == T0 + 5000
        assert stage_ends_at(resumed) == T0 + 5000 + STAGE_S

    def test_manual_promote_keeps_the_last_score(self) -> None:
        """A promotion by hand reports the last score the canary had."""
        step = apply_action(canary(last_score=81.5), Action.PROMOTE, T0 + 60, "ship it")
        assert step.decision is not None
        assert step.decision.score == 81.5
        assert step.decision.weight == 100.0


class TestScoringBoundaries:
    """interval_index and wants_score at and around their boundaries."""

    @pytest.mark.parametrize(
        ("offset", "index"),
        [
            (0.0, 0),
            (INTERVAL - 0.001, 0),
            (INTERVAL, 1),
            (INTERVAL + 0.001, 1),
            (3 * INTERVAL - 1e-7, 3),  # within float noise of the boundary counts as on it
            (3 * INTERVAL, 3),
            (7 * INTERVAL + 59, 7),
        ],
    )
    def test_interval_index(self, config: JudgeConfig, offset: float, index: int) -> None:
        """Whole intervals since the analysis began, with a float-noise tolerance."""
        assert interval_index(canary(), config, T0 + offset) == index

    def test_interval_index_before_analysis(self, config: JudgeConfig) -> None:
        """No analysis start yet: zero intervals."""
        assert interval_index(warming(), config, T0 + 10 * INTERVAL) == 0

    @pytest.mark.parametrize(
        ("offset", "scored_before", "wanted"),
        [
            (STEP, 0, False),
            (INTERVAL - STEP, 0, False),
            (INTERVAL, 0, True),
            (INTERVAL, 1, False),
            (INTERVAL + STEP, 1, False),
            (2 * INTERVAL, 1, True),
            (STAGE_S, 2, True),  # the stage's end always scores
            (STAGE_S - STEP, 1, False),
        ],
    )
    def test_wants_score(
        self, config: JudgeConfig, offset: float, scored_before: int, wanted: bool
    ) -> None:
        """A new interval boundary or the end of the stage asks for a score; nothing else."""
        state = canary(intervals_scored=scored_before)
        assert wants_score(state, config, T0 + offset) is wanted

    @pytest.mark.parametrize("phase", [Phase.WARMUP, Phase.PAUSED, Phase.PROMOTED])
    def test_only_running_canaries_want_a_score(self, config: JudgeConfig, phase: Phase) -> None:
        """Warm-up, paused and finished canaries are never scored."""
        assert not wants_score(canary(phase=phase), config, T0 + STAGE_S)


class TestDelivery:
    """make_delivery: which decisions become webhook outbox rows."""

    def _decision(self, state: Canary, config: JudgeConfig, ev: Evaluation, at: float) -> Any:
        step = next_step(state, config, ev, at)
        assert step.decision is not None
        return step

    def test_live_rollback_becomes_a_delivery(self, config: JudgeConfig) -> None:
        """A live canary's rollback is queued with its idempotency key and body."""
        step = self._decision(canary(), config, kill(), T0 + 30)
        delivery = make_delivery(step.canary, step.decision, "http://canaryd/e/c-1", T0 + 30)
        assert delivery is not None
        assert delivery.delivery_id == "c-1:4"
        assert delivery.event == "rollback"
        body = json.loads(delivery.body)
        assert body["event"] == "rollback"
        assert body["weight"] == 0
        assert body["evidence_url"] == "http://canaryd/e/c-1"

    def test_dry_run_sends_nothing(self, config: JudgeConfig) -> None:
        """A dry-run canary's decisions are recorded but produce no delivery."""
        step = self._decision(canary(mode=Mode.DRY_RUN), config, kill(), T0 + 30)
        assert make_delivery(step.canary, step.decision, "http://canaryd/e", T0 + 30) is None

    def test_pause_does_not_notify(self, config: JudgeConfig) -> None:
        """A pause is not a webhook event."""
        step = self._decision(canary(), config, scored(60), T0 + STAGE_S)
        assert make_delivery(step.canary, step.decision, "http://canaryd/e", T0) is None

    def test_no_webhook_no_delivery(self, config: JudgeConfig) -> None:
        """A canary without a webhook URL gets no outbox row."""
        step = self._decision(canary(webhook_url=None), config, kill(), T0 + 30)
        assert make_delivery(step.canary, step.decision, "http://canaryd/e", T0) is None
