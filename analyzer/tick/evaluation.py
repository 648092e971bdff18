"""The judge step of a tick: a fetched window in, every metric's judgement and the score out.

Pure (no I/O, no clock): the scheduler runs it off the event loop, a whole wake-up's canaries in
one batch, and the backtester runs the very same function on recordings.

- Kill-switch rules are checked on every poll over the trailing ``window`` of each rule
  (default: one analysis interval).
- Mann-Whitney and threshold metrics are judged and scored only when the lifecycle asks for a
  score (an interval boundary or the end of a stage), over the analysis window.
- For a ``count`` metric, Mann-Whitney judges the per-step ratio events/exposure.
- Sequential metrics (``sequential-count``, ``sequential-mean``) are recomputed on every poll
  from the whole window since analysis started; they share the config's α by e-Bonferroni.
  When scored, a failed one counts as High (Low for direction decrease), others as Pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyzer.configs.judgeconfig import JudgeConfig, KillRule, MetricConfig, ThresholdLimits
from analyzer.model import FloatArray, MetricData, Window
from judges.classifier import MannWhitneyOptions, classify
from judges.labels import Direction, Label
from judges.scorer import ScoredMetric, ScoreResult, score_groups
from judges.sequential.count import sequential_count
from judges.sequential.mean import sequential_mean
from judges.sequential.result import SequentialResult
from judges.threshold import ThresholdResult, ThresholdRule, threshold_counts, threshold_series

__all__ = ["Evaluation", "MetricOutcome", "evaluate", "per_step_series"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricOutcome:
    """One metric's judgement in a tick, with the statistics behind it."""

    name: str
    judge: str
    label: Label
    reason: str
    critical: bool
    muted: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialOutcome:
    """One sequential metric's state after this poll."""

    name: str
    judge: str
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
        if self.judge == "sequential-count":
            if self.direction is Direction.DECREASE:
                return f"{self.name}: rate ≤ {r.upper:.3g}× baseline ({evidence})"
            return f"{self.name}: rate ≥ {r.lower:.3g}× baseline ({evidence})"
        if self.direction is Direction.DECREASE:
            return f"{self.name}: canary − baseline ≤ {r.upper:.4g} ({evidence})"
        return f"{self.name}: canary − baseline ≥ {r.lower:.4g} ({evidence})"

    def record(self) -> dict[str, Any]:
        """JSON-ready evidence."""
        r = self.result
        return {
            "name": self.name,
            "judge": self.judge,
            "critical": self.critical,
            "failed": r.failed,
            "proven": r.proven,
            "e_value": _num(r.e_value),
            "threshold": r.threshold,
            "estimate": _num(r.estimate),
            "lower": _num(r.lower),
            "upper": _num(r.upper),
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
                    "canary": _num(k.canary),
                    "baseline": _num(k.baseline),
                }
                for k in self.kill
            ],
            "metrics": [
                {
                    "name": m.name,
                    "judge": m.judge,
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


def _num(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def _score_record(score: ScoreResult) -> dict[str, Any]:
    return {
        "score": score.score,
        "classification": str(score.classification),
        "reason": score.reason,
        "groups": {g.name: g.score for g in score.groups},
    }


def per_step_series(data: MetricData, side: str) -> FloatArray:
    """The per-step values a series judge sees: the series, or events/exposure for counts."""
    arrays = data.baseline if side == "baseline" else data.canary
    if data.kind == "series":
        return arrays["values"]
    events, exposure = arrays["events"], arrays["exposure"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(exposure > 0, events / exposure, np.nan)
    return np.asarray(ratio, dtype=np.float64)


def _has_data(data: MetricData) -> bool:
    if data.error:
        return False
    arrays = [*data.baseline.values(), *data.canary.values()]
    return bool(arrays) and all(np.isfinite(a).any() for a in arrays)


def _no_data_reason(window: Window) -> str:
    """Each metric's cause, ``"<metric>: <cause>"``: the sources' errors name the side and role
    (``"baseline, canary: empty result"``), not the metric, which the tick's reason must."""
    names = tuple(f"{name}: " for name in window.metrics)
    reasons = {
        d.error if d.error.startswith(names) else f"{d.name}: {d.error or 'no data'}"
        for d in window.metrics.values()
    }
    return "; ".join(sorted(reasons)) or "no metrics"


def evaluate(config: JudgeConfig, window: Window, *, score_now: bool) -> Evaluation:
    """Judge one canary's window: kill-switch always, metrics and score when ``score_now``."""
    usable = {name: _has_data(d) for name, d in window.metrics.items()}
    if not any(usable.values()):
        return Evaluation(no_data=True, no_data_reason=_no_data_reason(window))
    kill = tuple(_kill(rule, config, window) for rule in config.kill_switch)
    sequential = _sequential(config, window)
    if not score_now:
        return Evaluation(kill=kill, sequential=sequential)
    by_name = {s.name: s for s in sequential}
    outcomes = tuple(
        _sequential_outcome(m, by_name[m.name])
        if m.name in by_name
        else _judge_metric(m, config, window.metrics.get(m.name))
        for m in config.metrics
    )
    scored = [
        ScoredMetric(
            name=o.name,
            label=o.label,
            groups=(config.metric(o.name).group,),
            critical=o.critical,
            muted=o.muted,
            reason=o.reason,
        )
        for o in outcomes
    ]
    thresholds = config.score_thresholds
    score = score_groups(
        scored,
        config.groups,
        pass_threshold=thresholds.pass_,
        marginal_threshold=thresholds.marginal,
    )
    return Evaluation(kill=kill, sequential=sequential, metrics=outcomes, score=score)


def _sequential(config: JudgeConfig, window: Window) -> tuple[SequentialOutcome, ...]:
    metrics = [m for m in config.metrics if m.sequential]
    t_opt = max(10, round(config.analysis_interval / config.step))
    out = []
    for metric in metrics:
        data = window.metrics.get(metric.name)
        if data is None or not _has_data(data):
            result = SequentialResult(
                e_value=1.0,
                estimate=math.nan,
                lower=-math.inf,
                upper=math.inf,
                steps=0,
                failed=False,
                proven=False,
                threshold=len(metrics) / config.alpha,
                reason=(data.error or "no data") if data is not None else "not fetched",
            )
        elif metric.judge == "sequential-count":
            result = sequential_count(
                data.baseline["events"],
                data.baseline["exposure"],
                data.canary["events"],
                data.canary["exposure"],
                alpha=config.alpha,
                metrics=len(metrics),
                tolerance=metric.tolerance or 1.2,
                direction=metric.direction,
            )
        else:
            result = sequential_mean(
                data.baseline["values"],
                data.canary["values"],
                alpha=config.alpha,
                metrics=len(metrics),
                tolerance=metric.tolerance or 0.0,
                direction=metric.direction,
                t_opt=t_opt,
            )
        out.append(
            SequentialOutcome(
                name=metric.name,
                judge=metric.judge,
                critical=metric.critical,
                direction=metric.direction,
                result=result,
                has_data=data is not None and _has_data(data),
            )
        )
    return tuple(out)


def _sequential_outcome(metric: MetricConfig, seq: SequentialOutcome) -> MetricOutcome:
    """A sequential metric as the scorer sees it: High/Low when failed, Nodata without data."""
    if not seq.has_data:
        return _nodata(metric, seq.result.reason or "no data")
    label = Label.PASS
    if seq.failed:
        label = Label.LOW if metric.direction is Direction.DECREASE else Label.HIGH
    return MetricOutcome(
        name=metric.name,
        judge=metric.judge,
        label=label,
        reason=seq.reason,
        critical=metric.critical and seq.failed,
        muted=metric.muted,
        details=seq.record(),
    )


def _rule(limits: ThresholdLimits, metric: str) -> ThresholdRule:
    return ThresholdRule(
        metric=metric,
        min=limits.min,
        max=limits.max,
        max_increase=limits.max_increase,
        max_ratio=limits.max_ratio,
        min_points=limits.min_points,
        min_exposure=limits.min_exposure,
    )


def _threshold(rule: ThresholdRule, data: MetricData, last: int | None) -> ThresholdResult:
    cut = slice(-last, None) if last else slice(None)
    if data.kind == "count":
        return threshold_counts(
            rule,
            data.canary["events"][cut],
            data.canary["exposure"][cut],
            data.baseline["events"][cut],
            data.baseline["exposure"][cut],
        )
    return threshold_series(rule, data.canary["values"][cut], data.baseline["values"][cut])


def _kill(rule: KillRule, config: JudgeConfig, window: Window) -> ThresholdResult:
    data = window.metrics.get(rule.metric)
    if data is None or not _has_data(data):
        why = data.error if data is not None and data.error else "no data"
        nan = float("nan")
        return ThresholdResult(
            metric=rule.metric, label=Label.NODATA, reason=why, canary=nan, baseline=nan
        )
    span = rule.window if rule.window is not None else config.analysis_interval
    steps = max(1, math.ceil(span / config.step))
    return _threshold(_rule(rule, rule.metric), data, steps)


def _nodata(metric: MetricConfig, reason: str) -> MetricOutcome:
    label = (
        Label.NODATA_FAIL_METRIC if metric.must_have_data and not metric.critical else Label.NODATA
    )
    return MetricOutcome(
        name=metric.name,
        judge=metric.judge,
        label=label,
        reason=reason,
        critical=metric.critical and label is Label.NODATA,
        muted=metric.muted,
    )


def _judge_metric(
    metric: MetricConfig, config: JudgeConfig, data: MetricData | None
) -> MetricOutcome:
    if data is None or data.error:
        return _nodata(metric, data.error if data is not None else "not fetched")
    if metric.judge == "threshold" and metric.threshold is not None:
        res = _threshold(_rule(metric.threshold, metric.name), data, None)
        failed = res.label in (Label.HIGH, Label.LOW)
        if res.label is Label.NODATA:
            return _nodata(metric, res.reason)
        return MetricOutcome(
            name=metric.name,
            judge=metric.judge,
            label=res.label,
            reason=res.reason,
            critical=metric.critical and failed,
            muted=metric.muted,
            details={"canary": _num(res.canary), "baseline": _num(res.baseline)},
        )
    return _mann_whitney(metric, config, data)


def _mann_whitney(metric: MetricConfig, config: JudgeConfig, data: MetricData) -> MetricOutcome:
    eff = metric.effect_size
    options = MannWhitneyOptions(
        direction=metric.direction,
        tolerance=config.mann_whitney.tolerance,
        confidence=config.mann_whitney.confidence,
        effect_measure=eff.measure,
        allowed_increase=eff.allowed_increase,
        allowed_decrease=eff.allowed_decrease,
        critical_increase=eff.critical_increase,
        critical_decrease=eff.critical_decrease,
        critical=metric.critical,
        must_have_data=metric.must_have_data,
        muted=metric.muted,
        nan_strategy=metric.nan_strategy,
        outliers=metric.outliers.strategy,
        outlier_factor=metric.outliers.factor,
    )
    res = classify(per_step_series(data, "canary"), per_step_series(data, "baseline"), options)
    details: dict[str, Any] = {
        "ratio": _num(res.ratio),
        "canary_mean": _num(res.experiment.mean),
        "baseline_mean": _num(res.control.mean),
        "canary_n": res.experiment.count,
        "baseline_n": res.control.count,
    }
    if res.test is not None:
        details |= {
            "p_value": _num(res.test.p_value),
            "lower": _num(res.test.lower),
            "upper": _num(res.test.upper),
            "estimate": _num(res.test.estimate),
        }
    return MetricOutcome(
        name=metric.name,
        judge=metric.judge,
        label=res.label,
        reason=res.reason,
        critical=res.critical,
        muted=res.muted,
        details=details,
    )
