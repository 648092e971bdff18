"""The pure state machine: the next step of a canary from its evaluation and the clock.

``next_step`` never awaits and reads no clock: ``now`` is passed in. Per poll of a running
canary it decides, in this order (DESIGN.md §4):

1. a kill-switch rule trips → rollback now;
2. a critical sequential metric fails → rollback now (a non-critical one counts as High when
   the interval is scored);
3. no data at all → verdict ``none``; ``on_no_data: rollback`` rolls back, ``hold`` waits;
4. with a score (interval boundary or end of stage): score < marginal → rollback;
5. at the end of a stage: score ≥ pass → step to the next stage, or promote after the last;
   marginal ≤ score < pass (or no score by the deadline) → inconclusive → ``on_inconclusive``
   (``pause`` for a human, or ``rollback``);
6. early end of a stage: every sequential metric has proven non-inferiority, the stage's
   minimum time has passed and no scored interval is below pass → step / promote early.

Manual actions (abort, promote, pause, resume) go through ``apply_action``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import assert_never

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.errors import Conflict, InternalError
from analyzer.model import (
    Action,
    Canary,
    Decision,
    InconclusivePolicy,
    NoDataPolicy,
    Phase,
    Verdict,
)
from analyzer.tick.evaluation import Evaluation

__all__ = [
    "Step",
    "apply_action",
    "interval_index",
    "next_step",
    "stage_ends_at",
    "wants_score",
    "window_bounds",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """The outcome of one poll: the canary's new state, the verdict, and a decision if any."""

    canary: Canary
    verdict: Verdict
    reason: str
    score: float | None = None
    decision: Decision | None = None


def stage_ends_at(canary: Canary) -> float:
    """When the current stage's minimum time is over."""
    return canary.stage_started_at + canary.stage.duration_s


def interval_index(canary: Canary, config: JudgeConfig, now: float) -> int:
    """How many whole analysis intervals have passed since analysis started."""
    if canary.analysis_started_at is None:
        return 0
    return math.floor((now - canary.analysis_started_at) / config.analysis_interval + 1e-9)


def window_bounds(canary: Canary, config: JudgeConfig, now: float) -> tuple[float, float]:
    """The analysis window on the step grid: [analysis start, or the lookback's start, last step
    ≤ now]. The daemon's scheduler and the backtester both read their data through this."""
    anchor = canary.analysis_started_at or now
    end = anchor + math.floor((now - anchor) / config.step + 1e-9) * config.step
    start = anchor if config.lookback is None else max(anchor, end - config.lookback)
    return start, max(start, end)


def wants_score(canary: Canary, config: JudgeConfig, now: float) -> bool:
    """Whether this poll scores the metrics: a new interval boundary, or the end of a stage."""
    if canary.phase is not Phase.RUNNING:
        return False
    boundary = interval_index(canary, config, now) > canary.intervals_scored
    return boundary or now >= stage_ends_at(canary)


def _decide(
    canary: Canary,
    action: Action,
    reason: str,
    now: float,
    *,
    score: float | None,
    phase: Phase,
    stage_index: int | None = None,
) -> Step:
    index = canary.stage_index if stage_index is None else stage_index
    weight, verdict = _carried_out(action, canary.stages[min(index, len(canary.stages) - 1)].weight)
    seq = canary.decision_seq + 1
    decision = Decision(
        canary_id=canary.id,
        seq=seq,
        action=action,
        reason=reason,
        score=score,
        stage_index=index,
        weight=weight,
        decided_at=now,
        phase_after=phase,
    )
    moved = index != canary.stage_index
    state = replace(
        canary,
        phase=phase,
        decision_seq=seq,
        stage_index=index,
        last_reason=reason,
        last_score=score if score is not None else canary.last_score,
        updated_at=now,
        stage_started_at=now if moved else canary.stage_started_at,
        paused_from=Phase.RUNNING if phase is Phase.PAUSED else None,
        paused_at=now if phase is Phase.PAUSED else None,
    )
    return Step(canary=state, verdict=verdict, reason=reason, score=score, decision=decision)


def _carried_out(action: Action, stage_weight: float) -> tuple[float, Verdict]:
    """The canary's traffic weight (percent) once ``action`` is carried out, and the verdict
    of the poll (or manual action) that decides it."""
    match action:
        case Action.ROLLBACK:
            return 0.0, Verdict.FAIL
        case Action.PROMOTE:
            return 100.0, Verdict.PASS
        case Action.PAUSE:
            return stage_weight, Verdict.INCONCLUSIVE
        case Action.STEP | Action.RESUME | Action.ABORT:
            return stage_weight, Verdict.PASS
        case _:
            assert_never(action)


def _advance(canary: Canary, reason: str, now: float, score: float | None) -> Step:
    """Step to the next stage, or promote when none with a minimum time is left."""
    rest = canary.stages[canary.stage_index + 1 :]
    if not rest or all(s.duration_s == 0 for s in rest):
        return _decide(canary, Action.PROMOTE, reason, now, score=score, phase=Phase.PROMOTED)
    nxt = canary.stage_index + 1
    why = f"{reason}; stepping to {canary.stages[nxt].weight:g}%"
    return _decide(canary, Action.STEP, why, now, score=score, phase=Phase.RUNNING, stage_index=nxt)


def _inconclusive(
    canary: Canary, config: JudgeConfig, reason: str, now: float, score: float | None
) -> Step:
    match config.on_inconclusive:
        case InconclusivePolicy.ROLLBACK:
            why = f"inconclusive: {reason}"
            return _decide(canary, Action.ROLLBACK, why, now, score=score, phase=Phase.ROLLED_BACK)
        case InconclusivePolicy.PAUSE:
            why = f"inconclusive, paused for a human: {reason}"
            return _decide(canary, Action.PAUSE, why, now, score=score, phase=Phase.PAUSED)
        case _:
            assert_never(config.on_inconclusive)


def _start(canary: Canary, config: JudgeConfig, now: float) -> Step:
    if now < canary.created_at + config.warmup:
        left = canary.created_at + config.warmup - now
        return Step(canary=canary, verdict=Verdict.RUNNING, reason=f"warming up, {left:.0f}s left")
    state = replace(
        canary,
        phase=Phase.RUNNING,
        analysis_started_at=now,
        stage_started_at=now,
        intervals_scored=0,
        last_reason="analysis started",
        updated_at=now,
    )
    return Step(canary=state, verdict=Verdict.RUNNING, reason="analysis started")


def next_step(canary: Canary, config: JudgeConfig, ev: Evaluation, now: float) -> Step:
    """Decide one poll of a canary (see the module docstring for the order of the rules)."""
    match canary.phase:
        case Phase.WARMUP | Phase.PENDING:
            return _start(canary, config, now)
        case Phase.RUNNING:
            return _running(canary, config, ev, now)
        case Phase.PAUSED | Phase.PROMOTED | Phase.ROLLED_BACK | Phase.ABORTED | Phase.FAILED:
            return Step(canary=canary, verdict=Verdict.NONE, reason=f"canary is {canary.phase}")


def _running(canary: Canary, config: JudgeConfig, ev: Evaluation, now: float) -> Step:
    tripped = ev.tripped
    if tripped:
        why = "kill-switch: " + "; ".join(k.reason for k in tripped)
        return _decide(canary, Action.ROLLBACK, why, now, score=None, phase=Phase.ROLLED_BACK)
    failures = ev.critical_failures
    if failures:
        why = "; ".join(f.reason for f in failures)
        return _decide(canary, Action.ROLLBACK, why, now, score=None, phase=Phase.ROLLED_BACK)
    stage_over = now >= stage_ends_at(canary)
    if ev.no_data:
        return _no_data(canary, config, ev.no_data_reason, now, stage_over)
    if ev.score is None:
        if _may_end_early(canary, config, ev, now):
            return _advance(canary, _proven_reason(ev), now, canary.last_score)
        return Step(canary=canary, verdict=Verdict.RUNNING, reason=_running_reason(ev))
    scored = replace(
        canary, intervals_scored=max(canary.intervals_scored, interval_index(canary, config, now))
    )
    return _scored(scored, config, ev, now, stage_over)


def _no_data(canary: Canary, config: JudgeConfig, why: str, now: float, stage_over: bool) -> Step:
    """A poll without any usable data, as ``on_no_data`` says."""
    match config.on_no_data:
        case NoDataPolicy.ROLLBACK:
            rollback = f"no data: {why}"
            return _decide(
                canary, Action.ROLLBACK, rollback, now, score=None, phase=Phase.ROLLED_BACK
            )
        case NoDataPolicy.HOLD:
            return _hold(canary, config, why, now, stage_over)
        case _:
            assert_never(config.on_no_data)


def _hold(canary: Canary, config: JudgeConfig, why: str, now: float, stage_over: bool) -> Step:
    """Wait for data; at the stage's deadline the stage is inconclusive."""
    if stage_over:
        return _inconclusive(canary, config, f"no data by the stage deadline ({why})", now, None)
    return Step(canary=canary, verdict=Verdict.NONE, reason=f"no data, holding: {why}")


def _scored(
    canary: Canary, config: JudgeConfig, ev: Evaluation, now: float, stage_over: bool
) -> Step:
    assert ev.score is not None  # guarded by the caller
    if ev.score.forced_by_no_data:
        match config.on_no_data:
            case NoDataPolicy.HOLD:
                # Kayenta zeroes a score for missing data; canaryd never rolls back on that alone.
                why = f"partial data: {ev.score.reason}"
                return _hold(canary, config, why, now, stage_over)
            case NoDataPolicy.ROLLBACK:
                pass  # the zeroed score is judged as it stands, as Kayenta does
            case _:
                assert_never(config.on_no_data)
    score = ev.score.score
    marks = config.score_thresholds
    detail = f"score {score:g}" + (f" ({ev.score.reason})" if ev.score.reason else "")
    if score < marks.marginal:
        return _decide(
            canary,
            Action.ROLLBACK,
            f"{detail} < marginal {marks.marginal:g}",
            now,
            score=score,
            phase=Phase.ROLLED_BACK,
        )
    if not stage_over:
        state = replace(canary, last_score=score, last_reason=detail, updated_at=now)
        if score >= marks.pass_ and _may_end_early(state, config, ev, now):
            return _advance(state, f"{detail}; {_proven_reason(ev)}", now, score)
        return Step(canary=state, verdict=Verdict.RUNNING, reason=detail, score=score)
    if score >= marks.pass_:
        return _advance(canary, f"{detail} ≥ pass {marks.pass_:g}", now, score)
    return _inconclusive(canary, config, f"{detail} between marginal and pass", now, score)


def _may_end_early(canary: Canary, config: JudgeConfig, ev: Evaluation, now: float) -> bool:
    """Every sequential metric proven, the stage's minimum time over, no failing score."""
    if not ev.all_proven or now < canary.stage_started_at + canary.stage.min_duration_s:
        return False
    return canary.last_score is None or canary.last_score >= config.score_thresholds.pass_


def _proven_reason(ev: Evaluation) -> str:
    return "early: " + "; ".join(s.reason for s in ev.sequential)


def _running_reason(ev: Evaluation) -> str:
    if ev.sequential:
        return "judging: " + "; ".join(s.reason for s in ev.sequential)
    return "judging; no kill-switch tripped"


_UNFINISHED = frozenset({Phase.PENDING, Phase.WARMUP, Phase.RUNNING, Phase.PAUSED})


def _allowed_from(action: Action) -> frozenset[Phase]:
    """The phases a manual ``action`` may be taken in."""
    match action:
        case Action.ABORT | Action.PROMOTE | Action.ROLLBACK:
            return _UNFINISHED
        case Action.PAUSE:
            return frozenset({Phase.WARMUP, Phase.RUNNING})
        case Action.RESUME:
            return frozenset({Phase.PAUSED})
        case Action.STEP:  # the lifecycle's own decision, never a manual one
            return frozenset()
        case _:
            assert_never(action)


def apply_action(canary: Canary, action: Action, now: float, reason: str) -> Step:
    """A manual action; :class:`Conflict` when it does not fit the canary's phase."""
    if canary.phase not in _allowed_from(action):
        msg = f"cannot {action} a canary that is {canary.phase}"
        raise Conflict(msg)
    match action:
        case Action.ABORT:
            return _decide(canary, action, reason, now, score=None, phase=Phase.ABORTED)
        case Action.PROMOTE:
            return _decide(
                canary, action, reason, now, score=canary.last_score, phase=Phase.PROMOTED
            )
        case Action.ROLLBACK:
            return _decide(
                canary, action, reason, now, score=canary.last_score, phase=Phase.ROLLED_BACK
            )
        case Action.PAUSE:
            step = _decide(canary, action, reason, now, score=canary.last_score, phase=Phase.PAUSED)
            return replace(step, canary=replace(step.canary, paused_from=canary.phase))
        case Action.RESUME:
            return _resume(canary, reason, now)
        case Action.STEP:  # no phase allows it (_allowed_from)
            msg = "a step is never a manual action"
            raise InternalError(msg)
        case _:
            assert_never(action)


def _resume(canary: Canary, reason: str, now: float) -> Step:
    """Back to the phase the canary was paused from. The stage timer skips the pause; a stage
    that was already over (an inconclusive pause) gets a fresh minimum time for more evidence."""
    paused_at = canary.paused_at if canary.paused_at is not None else now
    restart = paused_at >= stage_ends_at(canary)
    started = now if restart else canary.stage_started_at + (now - paused_at)
    back = canary.paused_from or Phase.RUNNING
    step = _decide(canary, Action.RESUME, reason, now, score=canary.last_score, phase=back)
    state = replace(step.canary, paused_from=None, paused_at=None, stage_started_at=started)
    return replace(step, canary=state, verdict=Verdict.RUNNING)
