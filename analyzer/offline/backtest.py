"""Backtests: a recording replayed through the very lifecycle the daemon runs.

A fake clock starts at the recording's first step and moves one ``step_s`` per poll. At every
poll, as the scheduler does, the canary's window is computed on the step grid
(:func:`~analyzer.tick.lifecycle.window_bounds`, the rule the scheduler uses), read from the
recording by :class:`~analyzer.sources.replay.ReplaySource`, judged by
:func:`~analyzer.tick.judging.evaluate` (scoring when
:func:`~analyzer.tick.lifecycle.wants_score` says so) and decided by
:func:`~analyzer.tick.lifecycle.next_step`. The first rollback, promotion or pause ends the run;
``step`` decisions between stages do not.

Unless stages are given, the canary has one stage spanning the recording: analysis starts at
the first step after the config's warm-up and the stage ends on the last recorded step, where
the lifecycle must decide. The judged step length is the recording's: a config whose ``step``
differs is refused (its kill-switch windows and sequential tuning count steps of that length).

:func:`summarize` turns outcomes whose recordings carry ``truth`` into the figures an SRE tunes
a config by: false rollbacks among A/A runs (with a 95 % Wilson interval), power and the median
time to detect a regression.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, assert_never

from analyzer.configs.judgeconfig import JudgeConfig, config_hash
from analyzer.errors import InvalidInput
from analyzer.model import Action, Canary, Mode, Phase, Side, Stage
from analyzer.offline.recording import Recording, Truth
from analyzer.sources.protocol import FetchRequest, MetricQuery
from analyzer.sources.replay import ReplaySource
from analyzer.tick.evaluation import Evaluation
from analyzer.tick.judging import evaluate
from analyzer.tick.lifecycle import next_step, wants_score, window_bounds

__all__ = [
    "BacktestOutcome",
    "BacktestVerdict",
    "Summary",
    "backtest",
    "check_step",
    "format_summary",
    "format_table",
    "summarize",
    "wilson_interval",
]

_Z95 = 1.959963984540054
"""The 97.5 % quantile of the standard normal: a two-sided 95 % interval."""


class BacktestVerdict(StrEnum):
    """How a replayed canary ended."""

    ROLLBACK = "rollback"
    PROMOTE = "promote"
    INCONCLUSIVE = "inconclusive"
    NONE = "none"


def _ending(action: Action) -> BacktestVerdict | None:
    """How a decision ends the replay: rollback, promotion or pause; None goes on."""
    match action:
        case Action.ROLLBACK:
            return BacktestVerdict.ROLLBACK
        case Action.PROMOTE:
            return BacktestVerdict.PROMOTE
        case Action.PAUSE:
            return BacktestVerdict.INCONCLUSIVE
        case Action.STEP | Action.RESUME | Action.ABORT:
            return None
        case _:
            assert_never(action)


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestOutcome:
    """One recording's verdict, the 0-based step it was decided at (None: never) and why."""

    name: str
    verdict: BacktestVerdict
    step: int | None
    reason: str
    truth: Truth | None = None
    step_s: float = 60.0

    @property
    def minute(self) -> float | None:
        """Minutes from the recording's first step to the decision."""
        return None if self.step is None else self.step * self.step_s / 60.0

    def record(self) -> dict[str, Any]:
        """The ``--json`` line: exactly name, verdict, step and reason."""
        return {
            "name": self.name,
            "verdict": str(self.verdict),
            "step": self.step,
            "reason": self.reason,
        }


def check_step(config: JudgeConfig, recording: Recording) -> None:
    """Refuse a config whose ``step`` is not the recording's ``step_s``, naming both."""
    if not math.isclose(config.step, recording.step_s, rel_tol=1e-9):
        msg = (
            f"the recording's step_s is {recording.step_s:g}s but config {config.name!r} has "
            f"step {config.step:g}s; backtest it with a config whose step is "
            f"{recording.step_s:g}s"
        )
        raise InvalidInput(f"{recording.source or recording.name}: step_s", msg)


def _canary(config: JudgeConfig, recording: Recording, stages: Sequence[Stage] | None) -> Canary:
    if not stages:
        first = math.ceil(config.warmup / recording.step_s - 1e-9)
        span = max(0, recording.steps - 1 - first) * recording.step_s
        stages = (Stage(weight=100.0, duration_s=span),)
    return Canary(
        id=recording.name,
        name=recording.name,
        service="backtest",
        config_name=config.name,
        config_hash=config_hash(config),
        baseline=Side(labels={"side": "baseline"}),
        canary=Side(labels={"side": "canary"}),
        stages=tuple(stages),
        webhook_url=None,
        mode=Mode.DRY_RUN,
        created_at=recording.start,
        phase=Phase.WARMUP,
        stage_started_at=recording.start,
    )


def backtest(
    config: JudgeConfig, recording: Recording, *, stages: Sequence[Stage] | None = None
) -> BacktestOutcome:
    """Replay ``recording`` through the lifecycle until its first rollback, promotion or pause.

    ``stages`` default to one stage spanning the recording. Raises
    :class:`~analyzer.errors.InvalidInput` when the config's step is not the recording's.
    """
    check_step(config, recording)
    source = ReplaySource(recording)
    queries = tuple(
        MetricQuery(name=m.name, kind=m.kind, templates=m.templates()) for m in config.metrics
    )
    canary = _canary(config, recording, stages)
    reason = "no poll"
    for k in range(recording.steps):
        now = recording.time(k)
        score_now = wants_score(canary, config, now)
        ev = Evaluation()
        if canary.phase is Phase.RUNNING:
            start, end = window_bounds(canary, config, now)
            request = FetchRequest(
                canary_id=canary.id,
                metrics=queries,
                baseline=canary.baseline,
                canary=canary.canary,
                start=start,
                end=end,
                step_s=config.step,
            )
            ev = evaluate(config, source.window(request), score_now=score_now)
        step = next_step(canary, config, ev, now)
        canary, reason = step.canary, step.reason
        verdict = None if step.decision is None else _ending(step.decision.action)
        if step.decision is not None and verdict is not None:
            return _outcome(recording, verdict, k, step.decision.reason)
    why = f"no decision in {recording.steps} steps; last: {reason}"
    return _outcome(recording, BacktestVerdict.NONE, None, why)


def _outcome(
    recording: Recording, verdict: BacktestVerdict, step: int | None, reason: str
) -> BacktestOutcome:
    return BacktestOutcome(
        name=recording.name,
        verdict=verdict,
        step=step,
        reason=reason,
        truth=recording.truth,
        step_s=recording.step_s,
    )


# -- evaluation reports -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """How a config did on recordings with ``truth``.

    A false rollback is a rollback of an A/A run (no regression). A regression is detected
    when it is rolled back at or after its onset step; a rollback before the onset is counted
    apart (``premature``), as it cannot have been caused by the regression. Time to detect is
    measured from the onset step to the deciding step.
    """

    null_runs: int
    false_rollbacks: int
    false_rollback_ci: tuple[float, float] | None
    regressions: int
    detected: int
    premature: int
    median_minutes_to_detect: float | None

    @property
    def false_rollback_rate(self) -> float | None:
        """False rollbacks per A/A run."""
        return self.false_rollbacks / self.null_runs if self.null_runs else None

    @property
    def power(self) -> float | None:
        """Detected regressions per regression."""
        return self.detected / self.regressions if self.regressions else None

    def record(self) -> dict[str, Any]:
        """JSON-ready figures."""
        ci = self.false_rollback_ci
        return {
            "null_runs": self.null_runs,
            "false_rollbacks": self.false_rollbacks,
            "false_rollback_rate": self.false_rollback_rate,
            "false_rollback_ci95": None if ci is None else list(ci),
            "regressions": self.regressions,
            "detected": self.detected,
            "power": self.power,
            "premature_rollbacks": self.premature,
            "median_minutes_to_detect": self.median_minutes_to_detect,
        }


def wilson_interval(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927; Brown, Cai & DasGupta
    2001, eq. 4): centre (p̂ + z²/2n)/(1 + z²/n), half-width z/(1 + z²/n)·√(p̂(1−p̂)/n + z²/4n²)."""
    if trials <= 0 or not 0 <= successes <= trials:
        msg = f"need 0 ≤ successes ≤ trials and trials > 0, got {successes} of {trials}"
        raise ValueError(msg)
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(outcomes: Sequence[BacktestOutcome]) -> Summary | None:
    """False rollbacks, power and time to detect over the outcomes with ``truth``; None if none."""
    judged = [o for o in outcomes if o.truth is not None]
    if not judged:
        return None
    nulls = [o for o in judged if o.truth is not None and not o.truth.regression]
    false = sum(o.verdict is BacktestVerdict.ROLLBACK for o in nulls)
    delays: list[float] = []
    premature = 0
    regressions = [o for o in judged if o.truth is not None and o.truth.regression]
    for o in regressions:
        onset = o.truth.onset_step if o.truth is not None else None
        if o.verdict is not BacktestVerdict.ROLLBACK or o.step is None or onset is None:
            continue
        if o.step < onset:
            premature += 1
        else:
            delays.append((o.step - onset) * o.step_s / 60.0)
    return Summary(
        null_runs=len(nulls),
        false_rollbacks=false,
        false_rollback_ci=wilson_interval(false, len(nulls)) if nulls else None,
        regressions=len(regressions),
        detected=len(delays),
        premature=premature,
        median_minutes_to_detect=statistics.median(delays) if delays else None,
    )


# -- text ---------------------------------------------------------------------------------------


def format_table(outcomes: Sequence[BacktestOutcome]) -> str:
    """The outcomes as an aligned table: name, verdict, step, minute, reason."""
    rows = [("name", "verdict", "step", "minute", "reason")]
    for o in outcomes:
        minute = "-" if o.minute is None else f"{o.minute:g}"
        step = "-" if o.step is None else str(o.step)
        rows.append((o.name, str(o.verdict), step, minute, o.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for name, verdict, step, minute, reason in rows:
        lines.append(
            f"{name:<{widths[0]}}  {verdict:<{widths[1]}}  {step:>{widths[2]}}  "
            f"{minute:>{widths[3]}}  {reason}"
        )
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def format_summary(summary: Summary) -> str:
    """The summary in three lines."""
    s, ci = summary, summary.false_rollback_ci
    interval = "" if ci is None else f", 95 % CI {100 * ci[0]:.1f}–{100 * ci[1]:.1f} %"
    median = s.median_minutes_to_detect
    return "\n".join(
        [
            f"false rollbacks: {s.false_rollbacks} of {s.null_runs} A/A runs "
            f"({_percent(s.false_rollback_rate)}{interval})",
            f"power: {s.detected} of {s.regressions} regressions detected ({_percent(s.power)}); "
            f"{s.premature} rolled back before the onset",
            "median time to detect: " + ("n/a" if median is None else f"{median:g} min"),
        ]
    )
