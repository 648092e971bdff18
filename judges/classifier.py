"""Kayenta's metric classifier (NetflixACAJudge-v1.0) on top of the Mann-Whitney test.

The decision for one metric, in order (kayenta-judge ``classifiers/metric/MannWhitneyClassifier``):

1. a side is empty after preprocessing → ``Nodata`` (``NodataFailMetric`` when the metric must
   have data and is not critical); with the ``replace`` NaN strategy an empty side passes;
2. both sides hold the same values → ``Pass`` (identical samples);
3. one distinct value over both sides → ``Pass``;
4. otherwise the shift is compared with the tolerance band ±tolerance·|estimate|: ``High``
   when the interval lies above +band — decided exactly as "the test at d = +band rejects in
   favour of a larger shift", W(+band) > z, which also covers zero-inflated data whose
   interval ends ON the band (ClassifierSuite "High Metric (Large Input)") — and the effect
   size reaches
   ``allowed_increase`` (direction increase/either), ``Low`` when W(−band) < −z and the effect
   size is at most ``allowed_decrease`` (direction decrease/either), else ``Pass``. An
   undefined effect (meanRatio with a zero mean) passes the gates, as in Kayenta;
5. a critical metric whose High (Low) effect reaches ``critical_increase`` (``critical_decrease``)
   is flagged critical, which fails the whole canary in the scorer; so is a critical Nodata.

Unlike Kayenta, nothing random happens: when both sides are constant the interval is the
single difference c = canary − baseline (see ``judges.mannwhitney``), which is what Kayenta's
added noise approximates. Values that are ±Inf make the metric ``Error`` with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from judges.labels import Direction, EffectMeasure, Label, NanStrategy, OutlierStrategy
from judges.mannwhitney import MannWhitneyResult, mann_whitney_batch
from judges.preprocessing import DEFAULT_OUTLIER_FACTOR, FloatArray, Stats, describe, prepare

__all__ = ["MannWhitneyOptions", "MetricJudgement", "classify", "classify_stacked"]

_NO_EFFECT = {EffectMeasure.MEAN_RATIO: 1.0, EffectMeasure.CLES: 0.5}


@dataclass(frozen=True, slots=True, kw_only=True)
class MannWhitneyOptions:
    """One metric's judging options; defaults are NetflixACAJudge-v1.0's."""

    direction: Direction = Direction.EITHER
    tolerance: float = 0.25
    confidence: float = 0.98
    effect_measure: EffectMeasure = EffectMeasure.MEAN_RATIO
    allowed_increase: float | None = None
    """Smallest effect counted High; None means "no effect" (1.0 for meanRatio, 0.5 for cles)."""
    allowed_decrease: float | None = None
    critical_increase: float | None = None
    critical_decrease: float | None = None
    critical: bool = False
    must_have_data: bool = False
    muted: bool = False
    nan_strategy: NanStrategy = NanStrategy.REMOVE
    outliers: OutlierStrategy = OutlierStrategy.KEEP
    outlier_factor: float = DEFAULT_OUTLIER_FACTOR

    def __post_init__(self) -> None:
        if not self.tolerance >= 0.0 or not math.isfinite(self.tolerance):
            msg = f"tolerance must be a finite number ≥ 0, got {self.tolerance!r}"
            raise ValueError(msg)
        if not 0.0 < self.confidence < 1.0:
            msg = f"confidence must lie in (0, 1), got {self.confidence!r}"
            raise ValueError(msg)
        if self.outlier_factor <= 0.0:
            msg = f"outlier_factor must be > 0, got {self.outlier_factor!r}"
            raise ValueError(msg)

    def threshold(self, name: str) -> float:
        """The named effect threshold, or the measure's no-effect value when unset."""
        value: float | None = getattr(self, name)
        return _NO_EFFECT[self.effect_measure] if value is None else value


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricJudgement:
    """The classification of one metric with the evidence behind it."""

    label: Label
    note: str = ""
    """The reason of a decision taken before the test (no data, identical, Inf ...)."""
    critical: bool
    """True when this result fails the canary on its own (Kayenta's result ``critical``)."""
    muted: bool = False
    effect: float = float("nan")
    """The effect size the thresholds were applied to (NaN: not computed)."""
    ratio: float = float("nan")
    """mean(canary) / mean(baseline); NaN when undefined."""
    test: MannWhitneyResult | None = None
    experiment: Stats = field(default_factory=lambda: describe(np.empty(0)))
    control: Stats = field(default_factory=lambda: describe(np.empty(0)))
    measure: EffectMeasure = EffectMeasure.MEAN_RATIO

    @property
    def reason(self) -> str:
        """Why the metric got its label, in words (formatted on demand: the hot loop judges
        thousands of metrics and reads few reasons)."""
        if self.note or self.test is None:
            return self.note
        return _reason(self.label, self.test, self.effect, self.measure, critical=self.critical)


def classify(
    experiment: npt.ArrayLike, control: npt.ArrayLike, options: MannWhitneyOptions | None = None
) -> MetricJudgement:
    """Classify one metric: canary (experiment) values against baseline (control) values."""
    opts = options or MannWhitneyOptions()
    x = prepare(
        experiment, nan_strategy=opts.nan_strategy, outliers=opts.outliers,
        outlier_factor=opts.outlier_factor,
    )  # fmt: skip
    y = prepare(
        control, nan_strategy=opts.nan_strategy, outliers=opts.outliers,
        outlier_factor=opts.outlier_factor,
    )  # fmt: skip
    special = _special_case(x, y, opts)
    if special is not None:
        return special
    return _decide_rows(x[None, :], y[None, :], opts, [describe(x)], [describe(y)])[0]


def classify_stacked(
    experiment: npt.ArrayLike, control: npt.ArrayLike, options: MannWhitneyOptions | None = None
) -> list[MetricJudgement]:
    """Classify many metrics at once: row i of ``experiment`` (B×n) against row i of ``control``.

    The hot-loop form: rows without missing values are judged vectorised; other rows go
    through :func:`classify` one by one. Results equal :func:`classify` row by row.
    """
    opts = options or MannWhitneyOptions()
    x = np.asarray(experiment, dtype=np.float64)
    y = np.asarray(control, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        msg = f"experiment and control must be B×n and B×m, got {x.shape} and {y.shape}"
        raise ValueError(msg)
    regular = _regular_rows(x, y, opts)
    out: list[MetricJudgement | None] = [None] * x.shape[0]
    for i in np.flatnonzero(~regular).tolist():
        out[i] = classify(x[i], y[i], opts)
    rows = np.flatnonzero(regular)
    if rows.size:
        xs, ys = x[rows], y[rows]
        decided = _decide_rows(xs, ys, opts, _describe_rows(xs), _describe_rows(ys))
        for i, judgement in zip(rows.tolist(), decided, strict=True):
            out[i] = judgement
    return [j for j in out if j is not None]


def _regular_rows(x: FloatArray, y: FloatArray, opts: MannWhitneyOptions) -> npt.NDArray[np.bool_]:
    """Rows the vectorised path may take: finite, non-empty, not identical, not one value."""
    b = x.shape[0]
    if x.shape[1] == 0 or y.shape[1] == 0 or opts.outliers is OutlierStrategy.REMOVE:
        return np.zeros(b, dtype=bool)
    finite = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    xs, ys = np.sort(x, axis=1), np.sort(y, axis=1)
    identical = np.all(xs == ys, axis=1) if x.shape == y.shape else np.zeros(b, dtype=bool)
    lo = np.minimum(xs[:, 0], ys[:, 0])
    hi = np.maximum(xs[:, -1], ys[:, -1])
    return np.asarray(finite & ~identical & (lo != hi), dtype=np.bool_)


def _describe_rows(rows: FloatArray) -> list[Stats]:
    n = rows.shape[1]
    means = rows.mean(axis=1).tolist()
    stds = (rows.std(axis=1, ddof=1) if n > 1 else np.zeros(rows.shape[0])).tolist()
    mins, maxs = rows.min(axis=1).tolist(), rows.max(axis=1).tolist()
    return [
        Stats(count=n, mean=mean, std=std, min=lo, max=hi)
        for mean, std, lo, hi in zip(means, stds, mins, maxs, strict=True)
    ]


def _special_case(x: FloatArray, y: FloatArray, opts: MannWhitneyOptions) -> MetricJudgement | None:
    """Steps 1–3 of the decision (and ±Inf → Error); None when the test must run."""
    ex, ct = describe(x), describe(y)

    def judged(
        label: Label, why: str, *, critical: bool, ratio: float = math.nan
    ) -> MetricJudgement:
        return MetricJudgement(
            label=label, note=why, critical=critical, muted=opts.muted, ratio=ratio,
            experiment=ex, control=ct, measure=opts.effect_measure,
        )  # fmt: skip

    if x.size == 0 or y.size == 0:
        side = "canary" if x.size == 0 else "baseline"
        if opts.nan_strategy is NanStrategy.REPLACE:
            why = f"no {side} data; the replace NaN strategy counts that as a pass"
            return judged(Label.PASS, why, critical=False)
        if opts.must_have_data and not opts.critical:
            return judged(Label.NODATA_FAIL_METRIC, f"no {side} data", critical=False)
        return judged(Label.NODATA, f"no {side} data", critical=opts.critical)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        why = "values include ±Inf; cannot rank them meaningfully"
        return judged(Label.ERROR, why, critical=opts.critical)
    if x.size == y.size and bool(np.array_equal(np.sort(x), np.sort(y))):
        return judged(
            Label.PASS, "the canary and baseline data are identical", critical=False, ratio=1.0
        )
    if min(ex.min, ct.min) == max(ex.max, ct.max):
        return judged(Label.PASS, "one distinct value over both sides", critical=False, ratio=1.0)
    return None


def _decide_rows(
    x: FloatArray, y: FloatArray, opts: MannWhitneyOptions,
    ex_stats: Sequence[Stats], ct_stats: Sequence[Stats],
) -> list[MetricJudgement]:  # fmt: skip
    """Step 4–5 for rows that need the test, vectorised over rows."""
    tests = mann_whitney_batch(x, y, confidence=opts.confidence, tolerance=opts.tolerance)
    out = []
    for i, test in enumerate(tests):
        ex, ct = ex_stats[i], ct_stats[i]
        ratio = _ratio(ex.mean, ct.mean)
        if opts.effect_measure is EffectMeasure.CLES:
            effect = test.u / (x.shape[1] * y.shape[1])
        else:
            effect = ratio  # NaN when a mean is 0: the gates then let the test decide
        out.append(_label(test, effect, ratio, opts, ex=ex, ct=ct))
    return out


def _ratio(ex_mean: float, ct_mean: float) -> float:
    if ex_mean == 0.0 or ct_mean == 0.0:
        return float("nan")
    return ex_mean / ct_mean


def _label(
    test: MannWhitneyResult, effect: float, ratio: float, opts: MannWhitneyOptions,
    *, ex: Stats, ct: Stats,
) -> MetricJudgement:  # fmt: skip
    up = opts.direction in (Direction.INCREASE, Direction.EITHER)
    down = opts.direction in (Direction.DECREASE, Direction.EITHER)
    label, critical = Label.PASS, False
    if up and test.above_band and _at_least(effect, opts.threshold("allowed_increase")):
        label = Label.HIGH
        critical = opts.critical and _at_least(effect, opts.threshold("critical_increase"))
    elif down and test.below_band and _at_most(effect, opts.threshold("allowed_decrease")):
        label = Label.LOW
        critical = opts.critical and _at_most(effect, opts.threshold("critical_decrease"))
    return MetricJudgement(
        label=label, critical=critical, muted=opts.muted, effect=effect, ratio=ratio,
        test=test, experiment=ex, control=ct, measure=opts.effect_measure,
    )  # fmt: skip


def _at_least(effect: float, threshold: float) -> bool:
    """Effect gate for High; an undefined effect (a zero mean) does not block, as in Kayenta."""
    return math.isnan(effect) or effect >= threshold


def _at_most(effect: float, threshold: float) -> bool:
    """Effect gate for Low; an undefined effect does not block."""
    return math.isnan(effect) or effect <= threshold


def _reason(
    label: Label, test: MannWhitneyResult, effect: float, effect_measure: EffectMeasure,
    *, critical: bool,
) -> str:  # fmt: skip
    pct = round(test.confidence * 100, 2)
    band = test.band
    shift = f"shift {test.estimate:.6g} ({pct:g}% CI [{test.lower:.6g}, {test.upper:.6g}])"
    measure = str(effect_measure)
    match label:
        case Label.HIGH:
            tail = " (critical)" if critical else ""
            return f"canary higher{tail}: {shift} above +{band:.6g}, {measure} {effect:.4g}"
        case Label.LOW:
            tail = " (critical)" if critical else ""
            return f"canary lower{tail}: {shift} below -{band:.6g}, {measure} {effect:.4g}"
        case _:
            why = test.reason + "; " if test.reason else ""
            return f"{why}{shift} within ±{band:.6g} or effect {measure} {effect:.4g} allowed"
