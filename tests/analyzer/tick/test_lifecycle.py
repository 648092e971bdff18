"""The pure decision of a poll beyond its table: what each kind of decision does to the
canary, where interval and stage boundaries fall, and which decisions become outbox rows.
(The decision tables: ``test_lifecycle_polls.py`` and ``test_lifecycle_scores.py``; manual
actions: ``test_lifecycle_actions.py``.)"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Action, Canary, Mode, Phase, Stage, Verdict
from analyzer.tick.evaluation import Evaluation
from analyzer.tick.lifecycle import interval_index, next_step, wants_score
from analyzer.webhooks.message import make_delivery
from judges.scorer import ScoreResult, classify_score
from support.fakes import T0, MakeConfig
from support.lifecycle import (
    INTERVAL,
    STAGE_S,
    STAGES,
    STEP,
    TWO_TIMED,
    canary,
    kill,
    nodata,
    scored,
    seq,
    warming,
)


@pytest.fixture
def config(make_config: MakeConfig) -> JudgeConfig:
    """step 60 s, interval 5 m, warm-up 2 m, pass 75, marginal 50, hold, pause."""
    return make_config(warmup="2m")


class TestNextStep:
    """next_step: what each kind of decision does to the canary."""

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
