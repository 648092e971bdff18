"""The judge step of a tick: a fetched window in, every metric's judgement and the score out.

Pure (no I/O, no clock): the scheduler runs it off the event loop, a whole wake-up's canaries in
one batch, and the backtester runs the very same function on recordings.

- Kill-switch rules are checked on every poll over the trailing ``window`` of each rule
  (default: one analysis interval).
- Mann-Whitney and threshold metrics are judged and scored only when the lifecycle asks for a
  score (an interval boundary or the end of a stage), over the analysis window.
- For a ``count`` metric, Mann-Whitney judges the per-step ratio events/exposure.
- Sequential metrics (``sequential-count``, ``sequential-mean``) are recomputed on every poll
  from the whole window since analysis started (:mod:`analyzer.tick.sequential`). When scored,
  a failed one counts as High (Low for direction decrease), others as Pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, assert_never

import numpy as np
import structlog

from analyzer.configs.judgeconfig import JudgeConfig, KillRule, MetricConfig, ThresholdLimits
from analyzer.configs.overlap import overlaps
from analyzer.errors import InternalError
from analyzer.metricdata import (
    CountData,
    CountSide,
    FloatArray,
    MetricData,
    SeriesData,
    SeriesSide,
    SideName,
    has_data,
)
from analyzer.model import JudgeName, Window
from analyzer.tick.duequeue import Due
from analyzer.tick.evaluation import Evaluation, MetricOutcome, SequentialOutcome, json_number
from analyzer.tick.sequential import sequential_outcomes
from judges.classifier import MannWhitneyOptions, classify, prepared
from judges.labels import Direction, Label
from judges.mannwhitney.dependence import Dependence, inflation
from judges.scorer import ScoredMetric, score_groups
from judges.threshold import ThresholdResult, ThresholdRule, threshold_counts, threshold_series

__all__ = ["evaluate", "judge_due", "per_step_series"]

log = structlog.get_logger("canaryd.scheduler")


def per_step_series(data: MetricData, side: SideName) -> FloatArray:
    """The per-step values a series judge sees: the series, or events/exposure for counts."""
    match side:
        case SideName.BASELINE:
            arrays = data.baseline
        case SideName.CANARY:
            arrays = data.canary
        case _:
            assert_never(side)
    match arrays:
        case SeriesSide():
            return arrays.values
        case CountSide():
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(arrays.exposure > 0, arrays.events / arrays.exposure, np.nan)
            return np.asarray(ratio, dtype=np.float64)
        case _:
            assert_never(arrays)


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
    """Judge one canary's window: the kill-switch first (a tripped rule is the whole answer:
    the rollback does not wait for the other judges), then the sequential judges, and the
    metrics and score when ``score_now``."""
    usable = {name: has_data(d) for name, d in window.metrics.items()}
    if not any(usable.values()):
        return Evaluation(no_data=True, no_data_reason=_no_data_reason(window))
    kill = tuple(_kill(rule, config, window) for rule in config.kill_switch)
    killed = Evaluation(kill=kill)
    if killed.tripped:  # the rollback is decided: the costlier judges wait for no one
        return killed
    sequential = sequential_outcomes(config, window)
    if not score_now:
        return Evaluation(kill=kill, sequential=sequential)
    by_name = {s.name: s for s in sequential}
    outcomes = _with_warnings(
        config, tuple(_judged(m, config, window, by_name) for m in config.metrics)
    )
    scored = [
        ScoredMetric(
            name=o.name,
            label=o.label,
            groups=(metric.group,),
            critical=o.critical,
            muted=o.muted,
            reason=o.reason,
        )
        for metric, o in zip(config.metrics, outcomes, strict=True)
    ]
    thresholds = config.score_thresholds
    score = score_groups(
        scored,
        config.groups,
        pass_threshold=thresholds.pass_,
        marginal_threshold=thresholds.marginal,
    )
    return Evaluation(kill=kill, sequential=sequential, metrics=outcomes, score=score)


def _judged(
    metric: MetricConfig,
    config: JudgeConfig,
    window: Window,
    sequential: Mapping[str, SequentialOutcome],
) -> MetricOutcome:
    """One metric's judgement for the score, by its judge."""
    data = window.metrics.get(metric.name)
    match metric.judge:
        case JudgeName.SEQUENTIAL_COUNT | JudgeName.SEQUENTIAL_MEAN:
            return _sequential_outcome(metric, sequential[metric.name])
        case JudgeName.THRESHOLD:
            return _threshold_outcome(metric, data)
        case JudgeName.MANN_WHITNEY:
            return _mann_whitney(metric, config, data)
        case _:
            assert_never(metric.judge)


def _with_warnings(
    config: JudgeConfig, outcomes: tuple[MetricOutcome, ...]
) -> tuple[MetricOutcome, ...]:
    """Each outcome whose query's range overlaps the next samples carries the warning in its
    evidence (``warnings``), with the config's own variable values."""
    warned = {o.metric: o.message for o in overlaps(config)}
    return tuple(
        dataclasses.replace(o, details=o.details | {"warnings": [warned[o.name]]})
        if o.name in warned
        else o
        for o in outcomes
    )


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
    judged = data.mapped(lambda values: values[cut])
    match judged:
        case CountData(baseline=b, canary=c):
            return threshold_counts(rule, c.events, c.exposure, b.events, b.exposure)
        case SeriesData(baseline=b, canary=c):
            return threshold_series(rule, c.values, b.values)
        case _:
            assert_never(judged)


def _kill(rule: KillRule, config: JudgeConfig, window: Window) -> ThresholdResult:
    data = window.metrics.get(rule.metric)
    if data is None or not has_data(data):
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


def _unfetched(data: MetricData | None) -> str:
    """Why the source has nothing for the metric (empty when it has)."""
    return "not fetched" if data is None else data.error


def _threshold_outcome(metric: MetricConfig, data: MetricData | None) -> MetricOutcome:
    if data is None or data.error:
        return _nodata(metric, _unfetched(data))
    if metric.threshold is None:  # the config refuses a threshold judge without one
        msg = f"{metric.name}: the threshold judge has no threshold"
        raise InternalError(msg)
    res = _threshold(_rule(metric.threshold, metric.name), data, None)
    if res.label is Label.NODATA:
        return _nodata(metric, res.reason)
    return MetricOutcome(
        name=metric.name,
        judge=metric.judge,
        label=res.label,
        reason=res.reason,
        critical=metric.critical and res.label in (Label.HIGH, Label.LOW),
        muted=metric.muted,
        details={"canary": json_number(res.canary), "baseline": json_number(res.baseline)},
    )


def _mann_whitney(
    metric: MetricConfig, config: JudgeConfig, data: MetricData | None
) -> MetricOutcome:
    if data is None or data.error:
        return _nodata(metric, _unfetched(data))
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
        dependence=metric.dependence,
    )
    canary = per_step_series(data, SideName.CANARY)
    baseline = per_step_series(data, SideName.BASELINE)
    res = classify(canary, baseline, options)
    details: dict[str, Any] = {
        "ratio": json_number(res.ratio),
        "canary_mean": json_number(res.experiment.mean),
        "baseline_mean": json_number(res.control.mean),
        "canary_n": res.experiment.count,
        "baseline_n": res.control.count,
    }
    if res.test is not None:
        details |= {
            "p_value": json_number(res.test.p_value),
            "lower": json_number(res.test.lower),
            "upper": json_number(res.test.upper),
            "estimate": json_number(res.test.estimate),
        }
        if metric.dependence is Dependence.ADJUST:
            details["dependence"] = _dependence_record(canary, baseline, options)
    return MetricOutcome(
        name=metric.name,
        judge=metric.judge,
        label=res.label,
        reason=res.reason,
        critical=res.critical,
        muted=res.muted,
        details=details,
    )


def _dependence_record(
    canary: FloatArray, baseline: FloatArray, options: MannWhitneyOptions
) -> dict[str, Any]:
    """The adjustment the test made (``dependence: adjust``), from the values it tested."""
    x, y = prepared(canary, baseline, options)
    adj = inflation(x[None, :], y[None, :], options.confidence)[0]
    return {
        "r1": adj.r1,
        "canary_n_eff": adj.n_eff_experiment,
        "baseline_n_eff": adj.n_eff_control,
        "variance_factor": adj.factor,
    }


def judge_due(item: Due, window: Window | str | None) -> Evaluation:
    """The CPU work of one tick (the scheduler runs it in a worker thread). A canary whose
    fetch or judging failed gets a no-data evaluation naming the cause."""
    if window is None:
        return Evaluation()
    if isinstance(window, str):
        return Evaluation(no_data=True, no_data_reason=window)
    return _judge_one(item, window)


def _judge_one(item: Due, window: Window) -> Evaluation:
    try:
        return evaluate(item.config, window, score_now=item.score_now)
    except Exception as exc:  # a judging bug must not take the other canaries down
        log.exception("tick.judge_failed", canary_id=item.canary.id, service=item.canary.service)
        return Evaluation(no_data=True, no_data_reason=f"judging failed: {exc!r}")
