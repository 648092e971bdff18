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
single difference c = canary − baseline (see ``judges.mannwhitney.ranksum``), which is what
Kayenta's added noise approximates. Values that are ±Inf make the metric ``Error`` with that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from judges.arrays import FloatArray
from judges.judgement import Evidence, MetricJudgement, StatsArrays, Verdicts
from judges.labels import Direction, EffectMeasure, Label, NanStrategy, OutlierStrategy
from judges.mannwhitney.dependence import Dependence, widening
from judges.mannwhitney.ranksum import mann_whitney_arrays
from judges.preprocessing import DEFAULT_OUTLIER_FACTOR, describe, prepare

__all__ = ["MannWhitneyOptions", "classify", "classify_stacked", "prepared"]

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
    dependence: Dependence = Dependence.NONE
    """``adjust``: inflate Var(U) for serially dependent samples (not Kayenta; see
    :mod:`judges.mannwhitney.dependence`)."""

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


def classify(
    experiment: npt.ArrayLike, control: npt.ArrayLike, options: MannWhitneyOptions | None = None
) -> MetricJudgement:
    """Classify one metric: canary (experiment) values against baseline (control) values."""
    opts = options or MannWhitneyOptions()
    x, y = prepared(experiment, control, opts)
    special = _special_case(x, y, opts)
    if special is not None:
        return special
    return _decide_rows(x[None, :], y[None, :], opts)[0]


def prepared(
    experiment: npt.ArrayLike, control: npt.ArrayLike, options: MannWhitneyOptions
) -> tuple[FloatArray, FloatArray]:
    """Both sides after the NaN strategy and outlier removal: the values :func:`classify`
    tests, in their original order."""

    def one(side: npt.ArrayLike) -> FloatArray:
        return prepare(
            side,
            nan_strategy=options.nan_strategy,
            outliers=options.outliers,
            outlier_factor=options.outlier_factor,
        )

    return one(experiment), one(control)


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
    xs, ys = np.sort(x, axis=1), np.sort(y, axis=1)
    regular = _regular_rows(x, y, xs, ys, opts)
    if regular.all() and x.shape[0]:
        return _decide_rows(x, y, opts, ordered=(xs, ys))
    out: list[MetricJudgement | None] = [None] * x.shape[0]
    for i in np.flatnonzero(~regular).tolist():
        out[i] = classify(x[i], y[i], opts)
    rows = np.flatnonzero(regular)
    if rows.size:
        decided = _decide_rows(x[rows], y[rows], opts, ordered=(xs[rows], ys[rows]))
        for i, judgement in zip(rows.tolist(), decided, strict=True):
            out[i] = judgement
    return [j for j in out if j is not None]


def _regular_rows(
    x: FloatArray, y: FloatArray, xs: FloatArray, ys: FloatArray, opts: MannWhitneyOptions
) -> npt.NDArray[np.bool_]:
    """Rows the vectorised path may take: finite, non-empty, not identical, not one value
    (``xs``, ``ys``: the rows sorted)."""
    b = x.shape[0]
    if x.shape[1] == 0 or y.shape[1] == 0 or opts.outliers is OutlierStrategy.REMOVE:
        return np.zeros(b, dtype=bool)
    finite = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    identical = np.all(xs == ys, axis=1) if x.shape == y.shape else np.zeros(b, dtype=bool)
    lo = np.minimum(xs[:, 0], ys[:, 0])
    hi = np.maximum(xs[:, -1], ys[:, -1])
    return np.asarray(finite & ~identical & (lo != hi), dtype=np.bool_)


def _special_case(x: FloatArray, y: FloatArray, opts: MannWhitneyOptions) -> MetricJudgement | None:
    """Steps 1–3 of the decision (and ±Inf → Error); None when the test must run."""
    ex, ct = describe(x), describe(y)

    def judged(
        label: Label, why: str, *, critical: bool, ratio: float = math.nan
    ) -> MetricJudgement:
        return MetricJudgement.of(
            label=label,
            note=why,
            critical=critical,
            muted=opts.muted,
            ratio=ratio,
            measure=opts.effect_measure,
            evidence=Evidence(None, ex, ct),
        )

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


def _variance_factor(
    x: FloatArray, y: FloatArray, dependence: Dependence, confidence: float
) -> FloatArray | None:
    """Per row, how much serial dependence inflates Var(U); None for Kayenta's test. ``x`` and
    ``y`` are in time order (the autocorrelation needs it)."""
    match dependence:
        case Dependence.NONE:
            return None
        case Dependence.ADJUST:
            return widening(x, y, confidence)


def _decide_rows(
    x: FloatArray,
    y: FloatArray,
    opts: MannWhitneyOptions,
    *,
    ordered: tuple[FloatArray, FloatArray] | None = None,
) -> list[MetricJudgement]:
    """Steps 4–5 for rows that need the test, vectorised over rows (``ordered``: the rows
    sorted, when the caller has them)."""
    xs, ys = ordered if ordered is not None else (np.sort(x, axis=1), np.sort(y, axis=1))
    tests = mann_whitney_arrays(
        xs,
        ys,
        confidence=opts.confidence,
        tolerance=opts.tolerance,
        assume_sorted=True,
        variance_factor=_variance_factor(x, y, opts.dependence, opts.confidence),
    )
    ex, ct = StatsArrays.of(x, xs), StatsArrays.of(y, ys)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((ex.mean == 0) | (ct.mean == 0), np.nan, ex.mean / ct.mean)
    if opts.effect_measure is EffectMeasure.CLES:
        effect = tests.u / (x.shape[1] * y.shape[1])
    else:
        effect = ratio  # NaN when a mean is 0: the gates then let the test decide
    up = opts.direction in (Direction.INCREASE, Direction.EITHER)
    down = opts.direction in (Direction.DECREASE, Direction.EITHER)
    undefined = np.isnan(effect)
    with np.errstate(invalid="ignore"):
        high = up & tests.above_band & (undefined | (effect >= opts.threshold("allowed_increase")))
        low = ~high & down & tests.below_band
        low &= undefined | (effect <= opts.threshold("allowed_decrease"))
        critical = opts.critical & (
            (high & (undefined | (effect >= opts.threshold("critical_increase"))))
            | (low & (undefined | (effect <= opts.threshold("critical_decrease"))))
        )
    names = (Label.PASS, Label.HIGH, Label.LOW)
    verdicts = Verdicts(
        labels=tuple(names[code] for code in np.where(high, 1, np.where(low, 2, 0)).tolist()),
        critical=tuple(critical.tolist()),
        effect=tuple(effect.tolist()),
        ratio=tuple(ratio.tolist()),
        note="",
        muted=opts.muted,
        measure=opts.effect_measure,
        evidence=Evidence(tests, ex, ct),
    )
    return [MetricJudgement(verdicts, i) for i in range(len(verdicts.labels))]
