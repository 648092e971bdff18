"""What the judging step finds in one poll of a canary: each metric's outcome, the kill-switch
results, the score — and the evidence recorded with the tick.

:func:`~analyzer.tick.judging.evaluate` makes an :class:`Evaluation`; the lifecycle decides
from it (:func:`~analyzer.tick.lifecycle.next_step`), and :meth:`Evaluation.record` is the
JSON the tick stores. Sequential metrics have their own outcome (:class:`SequentialOutcome`),
kept on every poll; when the interval is scored each metric also has a :class:`MetricOutcome`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, assert_never

from analyzer.model import JudgeName
from judges.labels import Direction, Label
from judges.scorer import ScoreResult
from judges.sequential.result import SequentialResult
from judges.threshold import ThresholdResult

__all__ = [
    "Evaluation",
    "MetricOutcome",
    "SequentialJudge",
    "SequentialOutcome",
    "json_number",
]

SequentialJudge: TypeAlias = Literal[JudgeName.SEQUENTIAL_COUNT, JudgeName.SEQUENTIAL_MEAN]
"""The judges that are recomputed on every poll."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricOutcome:
    """One metric's judgement in a tick, with the statistics behind it."""

    name: str
    judge: JudgeName
    label: Label
    reason: str
    critical: bool
    muted: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialOutcome:
    """One sequential metric's state after this poll."""

    name: str
    judge: SequentialJudge
    critical: bool
    direction: Direction
    result: SequentialResult
    has_data: bool = True
    """False when the source returned nothing usable (an outage), as opposed to data in which
    nothing happened yet (exposure without events): only the former is Nodata."""

    @property
    def failed(self) -> bool:
        """A regression is proven (e-value at the e-Bonferroni threshold)."""
        return self.result.failed

    @property
    def proven(self) -> bool:
        """Non-inferiority within the metric's tolerance is proven."""
        return self.result.proven

    @property
    def reason(self) -> str:
        """The verdict in words, e.g. "error_rate: rate ≥ 2.1× baseline (e = 41 ≥ 20)"."""
        r = self.result
        if not r.failed:
            return f"{self.name}: {r.reason}"
        disp = f", dispersion {r.dispersion:.2g}" if r.dispersion > 1.0 else ""
        evidence = f"e = {r.e_value:.3g} ≥ {r.threshold:g}{disp}"
        decrease = self.direction is Direction.DECREASE
        match self.judge:
            case JudgeName.SEQUENTIAL_COUNT:
                if decrease:
                    return f"{self.name}: rate ≤ {r.upper:.3g}× baseline ({evidence})"
                return f"{self.name}: rate ≥ {r.lower:.3g}× baseline ({evidence})"
            case JudgeName.SEQUENTIAL_MEAN:
                if decrease:
                    return f"{self.name}: canary − baseline ≤ {r.upper:.4g} ({evidence})"
                return f"{self.name}: canary − baseline ≥ {r.lower:.4g} ({evidence})"
            case _:
                assert_never(self.judge)

    def record(self) -> dict[str, Any]:
        """JSON-ready evidence."""
        r = self.result
        return {
            "name": self.name,
            "judge": str(self.judge),
            "critical": self.critical,
            "failed": r.failed,
            "proven": r.proven,
            "e_value": json_number(r.e_value),
            "threshold": r.threshold,
            "estimate": json_number(r.estimate),
            "lower": json_number(r.lower),
            "upper": json_number(r.upper),
            "steps": r.steps,
            "dispersion": r.dispersion,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """Everything the lifecycle needs to decide one poll."""

    kill: tuple[ThresholdResult, ...] = ()
    sequential: tuple[SequentialOutcome, ...] = ()
    metrics: tuple[MetricOutcome, ...] = ()
    score: ScoreResult | None = None
    no_data: bool = False
    no_data_reason: str = ""

    @property
    def critical_failures(self) -> tuple[SequentialOutcome, ...]:
        """Critical sequential metrics whose regression is proven: rollback now."""
        return tuple(s for s in self.sequential if s.critical and s.failed)

    @property
    def all_proven(self) -> bool:
        """Every sequential metric has proven non-inferiority (and there is at least one)."""
        return bool(self.sequential) and all(s.proven for s in self.sequential)

    @property
    def tripped(self) -> tuple[ThresholdResult, ...]:
        """Kill-switch rules that crossed their line."""
        return tuple(k for k in self.kill if k.label in (Label.HIGH, Label.LOW))

    def record(self) -> dict[str, Any]:
        """JSON-ready evidence for the tick record."""
        return {
            "kill_switch": [
                {
                    "metric": k.metric,
                    "label": str(k.label),
                    "reason": k.reason,
                    "canary": json_number(k.canary),
                    "baseline": json_number(k.baseline),
                }
                for k in self.kill
            ],
            "metrics": [
                {
                    "name": m.name,
                    "judge": str(m.judge),
                    "label": str(m.label),
                    "reason": m.reason,
                    "critical": m.critical,
                    "muted": m.muted,
                    **m.details,
                }
                for m in self.metrics
            ],
            "sequential": [s.record() for s in self.sequential],
            "score": None if self.score is None else _score_record(self.score),
            "no_data": self.no_data_reason if self.no_data else None,
        }


def json_number(value: float) -> float | None:
    """``value`` as JSON has it: NaN and ±Inf (which JSON lacks) as None."""
    return None if math.isnan(value) or math.isinf(value) else value


def _score_record(score: ScoreResult) -> dict[str, Any]:
    return {
        "score": score.score,
        "classification": str(score.classification),
        "reason": score.reason,
        "groups": {g.name: g.score for g in score.groups},
    }
