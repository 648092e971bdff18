"""Hard lines on the canary's latest window: the threshold judge and the kill-switch.

A rule may bound the canary absolutely (``min``, ``max``), relative to the baseline as a
difference (``max_increase``: canary − baseline) or a ratio (``max_ratio``: canary / baseline).
For a ``series`` metric the window's value is the mean of its points; for a ``count`` metric it
is Σevents / Σexposure. Too little evidence — fewer than ``min_points`` points, or less than
``min_exposure`` canary exposure — yields Nodata, never a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from judges.labels import Label

__all__ = ["ThresholdResult", "ThresholdRule", "threshold_counts", "threshold_series"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdRule:
    """One hard line; unset bounds are not checked."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_increase: float | None = None
    max_ratio: float | None = None
    min_points: int = 1
    min_exposure: float = 0.0

    def __post_init__(self) -> None:
        bounds = (self.min, self.max, self.max_increase, self.max_ratio)
        if all(b is None for b in bounds):
            msg = (
                f"threshold rule for {self.metric!r} sets none of min, max, max_increase, max_ratio"
            )
            raise ValueError(msg)
        if self.min_points < 1 or self.min_exposure < 0:
            msg = f"threshold rule for {self.metric!r}: min_points ≥ 1 and min_exposure ≥ 0"
            raise ValueError(msg)

    @property
    def relative(self) -> bool:
        """Whether the rule needs the baseline."""
        return self.max_increase is not None or self.max_ratio is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdResult:
    """Outcome of one rule: the label, the values compared and the reason in words."""

    metric: str
    label: Label
    reason: str
    canary: float
    baseline: float


def threshold_series(
    rule: ThresholdRule, canary: npt.ArrayLike, baseline: npt.ArrayLike | None = None
) -> ThresholdResult:
    """Judge a series window: the mean of the canary's (non-missing) points against the rule."""
    c = _finite(canary)
    b = _finite(baseline) if baseline is not None else np.empty(0)
    nan = float("nan")
    if c.size < rule.min_points:
        why = f"{c.size} canary points < min_points {rule.min_points}"
        return ThresholdResult(
            metric=rule.metric, label=Label.NODATA, reason=why, canary=nan, baseline=nan
        )
    c_val = float(c.mean())
    b_val = float(b.mean()) if b.size else nan
    return _judge(rule, c_val, b_val)


def threshold_counts(
    rule: ThresholdRule,
    canary_events: npt.ArrayLike,
    canary_exposure: npt.ArrayLike,
    baseline_events: npt.ArrayLike | None = None,
    baseline_exposure: npt.ArrayLike | None = None,
) -> ThresholdResult:
    """Judge a count window: the canary's event rate Σevents/Σexposure against the rule."""
    ce, cn = _paired(canary_events, canary_exposure)
    nan = float("nan")
    if cn.sum() < max(rule.min_exposure, np.finfo(float).tiny):
        why = f"canary exposure {cn.sum():g} < min_exposure {rule.min_exposure:g}"
        return ThresholdResult(
            metric=rule.metric, label=Label.NODATA, reason=why, canary=nan, baseline=nan
        )
    c_val = float(ce.sum() / cn.sum())
    b_val = nan
    if baseline_events is not None and baseline_exposure is not None:
        be, bn = _paired(baseline_events, baseline_exposure)
        if bn.sum() > 0:
            b_val = float(be.sum() / bn.sum())
    return _judge(rule, c_val, b_val)


def _finite(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def _paired(
    events: npt.ArrayLike, exposure: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    e = np.asarray(events, dtype=np.float64).ravel()
    n = np.asarray(exposure, dtype=np.float64).ravel()
    if e.shape != n.shape:
        msg = f"events and exposure differ in length: {e.size} and {n.size}"
        raise ValueError(msg)
    keep = np.isfinite(e) & np.isfinite(n) & (n >= 0)
    return e[keep], n[keep]


def _judge(rule: ThresholdRule, c: float, b: float) -> ThresholdResult:
    def result(label: Label, reason: str) -> ThresholdResult:
        return ThresholdResult(metric=rule.metric, label=label, reason=reason, canary=c, baseline=b)

    name = rule.metric
    if rule.max is not None and c > rule.max:
        return result(Label.HIGH, f"{name}: canary {c:.6g} > max {rule.max:g}")
    if rule.min is not None and c < rule.min:
        return result(Label.LOW, f"{name}: canary {c:.6g} < min {rule.min:g}")
    if rule.relative and math.isnan(b):
        return result(Label.NODATA, f"{name}: no baseline value to compare with")
    if rule.max_increase is not None and c - b > rule.max_increase:
        return result(
            Label.HIGH,
            f"{name}: canary − baseline = {c - b:.6g} > max_increase {rule.max_increase:g}",
        )
    if rule.max_ratio is not None:
        ratio = c / b if b != 0 else (math.inf if c > 0 else 1.0)
        if ratio > rule.max_ratio:
            return result(
                Label.HIGH, f"{name}: canary/baseline = {ratio:.4g} > max_ratio {rule.max_ratio:g}"
            )
    return result(Label.PASS, f"{name}: canary {c:.6g} within its limits")
