"""Mann-Whitney / Wilcoxon rank-sum test with the shift interval and estimate Kayenta reports.

Conventions: ``experiment`` is the canary (R's ``x``), ``control`` the baseline (R's ``y``); the
shift is experiment − control.

p-value
    Two-sided normal approximation with tie and continuity correction, the value of
    ``scipy.stats.mannwhitneyu(experiment, control, method="asymptotic", use_continuity=True)``:
    z = (max(U₁, U₂) − nm/2 − ½) / σ with σ² = nm/12 · ((N+1) − Σ(t³−t)/(N(N−1))), N = n+m,
    p = 2·(1 − Φ(z)) clipped to [0, 1] (Mann & Whitney 1947; tie term per Lehmann 1975, §1.4).

Interval and estimate
    R's ``wilcox.test(x, y, conf.int=TRUE, exact=FALSE, correct=TRUE)`` (and Kayenta's port in
    kayenta-mannwhitney ``MannWhitney.scala``) solve W(d) = z_q for the shift d, where

        W(d) = (U(d) − nm/2 − ½·sign(U(d) − nm/2)) / σ(d)

    and U(d) is the statistic of (x − d, y). U(d) only changes at the pairwise differences
    D = x_i − y_j: on the open interval between the k-th and (k+1)-th smallest difference it is
    nm − k, and σ(d) there is the constant σ₀ whose tie term counts ties *within* each sample
    (ties across the samples exist only at the jump points). So W is a step function and the
    root a numeric solver converges to is a jump point: the k*-th smallest difference, where k*
    is the first step whose value is ≤ 0. We compute k* in closed form and select D₍k*₎ from
    the differences (:mod:`judges.mannwhitney.orderstats`, without sorting all n·m of them) —
    exact, where R and Kayenta stop their solvers at a tolerance of 1e-4.

    The estimate is the Hodges–Lehmann median of the pairwise differences (Hodges & Lehmann
    1963), the midpoint of the step on which W(d) = 0; R's solver returns a point of that flat
    step, Kayenta's suite asserts the midpoint (experiment [10,20,30,40] vs control [1,2,3,4]:
    22.5).

Degenerate input is an outcome with a reason, never an exception: an empty side gives NaNs and
``reason="no data"``; when both sides are constant every pairwise difference is the same value
c, so the interval and the estimate are [c, c] and c (R stops with "all observations are tied";
Kayenta adds random noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from judges.arrays import FloatArray, IntArray
from judges.mannwhitney import merges, orderstats
from judges.mannwhitney.band import Band, band_tests, sigma

__all__ = ["MannWhitneyResult", "mann_whitney", "mann_whitney_batch", "z_quantile"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MannWhitneyResult:
    """One two-sample comparison: the test, the interval of the shift and its estimate."""

    u: float
    """U statistic of the experiment (pairs experiment > control, ties counted ½)."""
    z: float
    p_value: float
    lower: float
    upper: float
    estimate: float
    confidence: float
    band: float = float("nan")
    """tolerance·|estimate| when a tolerance was given (Kayenta's classification band)."""
    above_band: bool = False
    """The test rejects "shift ≤ +band" in favour of a larger shift: W(+band) > z."""
    below_band: bool = False
    """The test rejects "shift ≥ −band" in favour of a smaller shift: W(−band) < −z."""
    reason: str = ""
    """Empty for a regular result; says why the answer is degenerate otherwise."""


_CONSTANT = "both sides constant: every pairwise difference is equal"


@dataclass(frozen=True, slots=True, kw_only=True)
class MannWhitneyArrays:
    """Many comparisons as columns (row i of each array is comparison i): what the batch
    computes; :meth:`result` makes the per-comparison object when one is needed."""

    u: FloatArray
    z: FloatArray
    p_value: FloatArray
    lower: FloatArray
    upper: FloatArray
    estimate: FloatArray
    band: FloatArray
    above_band: npt.NDArray[np.bool_]
    below_band: npt.NDArray[np.bool_]
    constant: npt.NDArray[np.bool_]
    confidence: float

    def __len__(self) -> int:
        return int(self.u.shape[0])

    def result(self, i: int) -> MannWhitneyResult:
        """Comparison ``i`` as a :class:`MannWhitneyResult`."""
        return MannWhitneyResult(
            u=float(self.u[i]),
            z=float(self.z[i]),
            p_value=float(self.p_value[i]),
            lower=float(self.lower[i]),
            upper=float(self.upper[i]),
            estimate=float(self.estimate[i]),
            confidence=self.confidence,
            band=float(self.band[i]),
            above_band=bool(self.above_band[i]),
            below_band=bool(self.below_band[i]),
            reason=_CONSTANT if self.constant[i] else "",
        )

    def results(self) -> list[MannWhitneyResult]:
        """Every comparison as a :class:`MannWhitneyResult`."""
        return [self.result(i) for i in range(len(self))]


def z_quantile(confidence: float) -> float:
    """Upper α/2 quantile of the standard normal for a two-sided interval at ``confidence``."""
    _check_confidence(confidence)
    return float(special.ndtri(1.0 - (1.0 - confidence) / 2.0))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0 or not np.isfinite(confidence):
        msg = f"confidence must lie in (0, 1), got {confidence!r}"
        raise ValueError(msg)


def _as_sample(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        msg = f"{name} must be one-dimensional, got shape {arr.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(arr)):
        msg = f"{name} contains NaN or infinite values; apply a NaN strategy first"
        raise ValueError(msg)
    return arr


def mann_whitney(
    experiment: npt.ArrayLike,
    control: npt.ArrayLike,
    *,
    confidence: float = 0.98,
    tolerance: float | None = None,
) -> MannWhitneyResult:
    """Compare one experiment sample with one control sample (see the module docstring)."""
    x = _as_sample(experiment, "experiment")
    y = _as_sample(control, "control")
    _check_confidence(confidence)
    if x.size == 0 or y.size == 0:
        nan = float("nan")
        return MannWhitneyResult(
            u=nan,
            z=nan,
            p_value=nan,
            lower=nan,
            upper=nan,
            estimate=nan,
            confidence=confidence,
            reason="no data",
        )
    return mann_whitney_batch(x[None, :], y[None, :], confidence=confidence, tolerance=tolerance)[0]


def mann_whitney_batch(
    experiment: FloatArray,
    control: FloatArray,
    *,
    confidence: float = 0.98,
    tolerance: float | None = None,
    chunk: int = 256,
) -> list[MannWhitneyResult]:
    """Compare row i of ``experiment`` (B×n) with row i of ``control`` (B×m), vectorised.

    With a ``tolerance``, each result also says whether the test rejects a shift of at most
    ±tolerance·|estimate| (the band Kayenta classifies against). Rows are processed ``chunk``
    at a time, which bounds the working memory.
    """
    arrays = mann_whitney_arrays(
        experiment, control, confidence=confidence, tolerance=tolerance, chunk=chunk
    )
    return arrays.results()


def _validated(
    experiment: FloatArray, control: FloatArray, confidence: float, tolerance: float | None
) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(experiment, dtype=np.float64)
    y = np.asarray(control, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        msg = f"experiment and control must be B×n and B×m, got {x.shape} and {y.shape}"
        raise ValueError(msg)
    if x.shape[1] == 0 or y.shape[1] == 0:
        msg = "batched samples must be non-empty; use mann_whitney() for empty sides"
        raise ValueError(msg)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        msg = "samples contain NaN or infinite values; apply a NaN strategy first"
        raise ValueError(msg)
    _check_confidence(confidence)
    if tolerance is not None and not (tolerance >= 0 and np.isfinite(tolerance)):
        msg = f"tolerance must be a finite number ≥ 0, got {tolerance!r}"
        raise ValueError(msg)
    return x, y


def mann_whitney_arrays(
    experiment: FloatArray,
    control: FloatArray,
    *,
    confidence: float = 0.98,
    tolerance: float | None = None,
    chunk: int = 256,
    assume_sorted: bool = False,
    variance_factor: FloatArray | None = None,
) -> MannWhitneyArrays:
    """:func:`mann_whitney_batch` as columns, for callers that vectorise what follows;
    ``assume_sorted`` skips sorting rows the caller has already sorted.

    ``variance_factor`` (one per row, ≥ 1) inflates Var(U) for serially dependent samples
    (:mod:`judges.mannwhitney.dependence`): W(d) = (U(d) − nm/2 − ½·sign)/(σ(d)·√f) is compared
    with z, which is the same as comparing R's W(d) with z·√f, so the interval, the band tests
    and the p-value all use that quantile. None is Kayenta's test, untouched."""
    x, y = _validated(experiment, control, confidence, tolerance)
    b, n = x.shape
    m = y.shape[1]
    pairs = n * m
    zq: float | FloatArray = z_quantile(confidence)
    widen = None if variance_factor is None else _widening(variance_factor, b)
    if widen is not None:
        zq = zq * widen
    xs, ys = np.empty((b, n)), np.empty((b, m))
    u, pooled, sigma0 = np.empty(b), np.empty(b), np.empty(b)
    tie_within, longest = np.empty(b), np.empty(b)
    k_lower, k_upper = np.empty(b, dtype=np.int64), np.empty(b, dtype=np.int64)
    found = [np.empty((b, 1)), np.empty((b, 2)), np.empty((b, 1))]
    unsettled = np.zeros((3, b), dtype=bool)
    scratch = merges.Scratch()
    # Chunk by chunk: each chunk's temporaries are reused by the next.
    for first in range(0, b, chunk):
        rows = slice(first, first + chunk)
        xs[rows] = x[rows] if assume_sorted else np.sort(x[rows], axis=1)
        ys[rows] = y[rows] if assume_sorted else np.sort(y[rows], axis=1)
        x_runs, y_runs = merges.runs(xs[rows]), merges.runs(ys[rows])
        tie_within[rows] = x_runs.tie + y_runs.tie
        longest[rows] = x_runs.longest + y_runs.longest
        # Interval: σ between the jump points counts ties within each sample only.
        sigma0[rows] = sigma(n, m, tie_within[rows])
        zq_rows = zq if isinstance(zq, float) else zq[rows]
        k_lower[rows] = _root_rank(pairs, zq_rows * sigma0[rows])
        k_upper[rows] = _root_rank(pairs, -zq_rows * sigma0[rows])
        u[rows], pooled[rows], parts, unsettled[:, rows] = orderstats.chunk_statistics(
            xs[rows],
            ys[rows],
            y_runs,
            _rank_groups(k_lower[rows], k_upper[rows], pairs),
            scratch,
        )
        for out, part in zip(found, parts, strict=True):
            out[rows] = part
    if unsettled.any():
        orderstats.settle(xs, ys, _rank_groups(k_lower, k_upper, pairs), found, unsettled)
    lower, upper = found[0][:, 0], found[2][:, 0]
    estimate = 0.5 * (found[1][:, 0] + found[1][:, 1])

    # p-value as scipy's asymptotic method: ties over the pooled sample at d = 0.
    sigma_pooled = sigma(n, m, pooled)
    u_big = np.maximum(u, pairs - u)
    spread = sigma_pooled if widen is None else sigma_pooled * widen
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (u_big - pairs / 2.0 - 0.5) / spread
        p = np.clip(2.0 * special.ndtr(-z), 0.0, 1.0)
    p = np.where(np.isnan(p), 1.0, p)

    above: npt.NDArray[np.bool_] = np.zeros(b, dtype=bool)
    below: npt.NDArray[np.bool_] = np.zeros(b, dtype=bool)
    if tolerance is not None:
        width = tolerance * np.abs(estimate)
        above, below = band_tests(
            Band(
                x=xs,
                y=ys,
                band=width,
                zq=zq,
                u=u,
                sigma=sigma_pooled,
                sigma0=sigma0,
                tie_within=tie_within,
                longest=longest,
            ),
            lower=lower,
            upper=upper,
            k_lower=k_lower,
            k_upper=k_upper,
        )
    else:
        width = np.full(b, np.nan)
    constant = (xs[:, 0] == xs[:, -1]) & (ys[:, 0] == ys[:, -1])
    return MannWhitneyArrays(
        u=u,
        z=z,
        p_value=p,
        lower=lower,
        upper=upper,
        estimate=estimate,
        band=width,
        above_band=above,
        below_band=below,
        constant=constant,
        confidence=confidence,
    )


def _widening(variance_factor: FloatArray, rows: int) -> FloatArray:
    """√f per row, checked: one finite factor ≥ 1 per row."""
    f = np.asarray(variance_factor, dtype=np.float64)
    if f.shape != (rows,) or not np.all(np.isfinite(f)) or np.any(f < 1.0):
        msg = f"variance_factor must hold one finite value ≥ 1 per row, got shape {f.shape}"
        raise ValueError(msg)
    return np.asarray(np.sqrt(f), dtype=np.float64)


def _rank_groups(k_lower: IntArray, k_upper: IntArray, pairs: int) -> list[IntArray]:
    """The ranks of D₍k₎ each row needs, grouped as the selection takes them: the interval's
    lower end, the one or two middle differences (the estimate), the upper end."""
    half = pairs // 2
    middle = [half + 1, half + 1] if pairs % 2 else [half, half + 1]
    return [
        np.clip(k_lower, 1, pairs)[:, None],
        np.broadcast_to(np.array(middle, dtype=np.int64), (k_lower.size, 2)),
        np.clip(k_upper, 1, pairs)[:, None],
    ]


def _root_rank(pairs: int, c: FloatArray) -> IntArray:
    """k* = min{k : h(k) ≤ c}, unclipped: the jump point where W(d) − z_q changes sign for
    c = z_q·σ₀. On the step after the k-th smallest difference U − nm/2 = nm/2 − k, so
    h(k) = nm/2 − k − ½·sign(nm/2 − k) is non-increasing in k; for c ≥ 0 the first k with
    h(k) ≤ c is ⌈nm/2 − ½ − c⌉, for c < 0 it is ⌈nm/2 + ½ − c⌉. Below 1 means W ≤ z_q already
    at the smallest difference (R's solver then stops at its lower end), above nm that it never
    gets there (the upper end)."""
    centre = pairs / 2.0
    k = np.where(c >= 0, np.ceil(centre - 0.5 - c), np.ceil(centre + 0.5 - c))
    return k.astype(np.int64)
