"""apply_action, the decision a human takes: which actions fit which phase, and what pause
and resume do to the stage's timers."""

from __future__ import annotations

import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.errors import Conflict
from analyzer.model import Action, Phase, Verdict
from analyzer.tick.lifecycle import apply_action, next_step, stage_ends_at
from support.fakes import T0
from support.lifecycle import STAGE_S, canary, scored, warming


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
