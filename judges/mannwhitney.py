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
    is the first step whose value is ≤ 0. We compute k* in closed form and read D₍k*₎ off the
    sorted differences — exact, where R and Kayenta stop their solvers at a tolerance of 1e-4.

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
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "MannWhitneyResult",
    "mann_whitney",
    "mann_whitney_batch",
    "z_quantile",
]


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
            u=float(self.u[i]), z=float(self.z[i]), p_value=float(self.p_value[i]),
            lower=float(self.lower[i]), upper=float(self.upper[i]),
            estimate=float(self.estimate[i]), confidence=self.confidence,
            band=float(self.band[i]), above_band=bool(self.above_band[i]),
            below_band=bool(self.below_band[i]), reason=_CONSTANT if self.constant[i] else "",
        )  # fmt: skip

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
            u=nan, z=nan, p_value=nan, lower=nan, upper=nan, estimate=nan,
            confidence=confidence, reason="no data",
        )  # fmt: skip
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
    at a time so the B×n×m pairwise differences stay in cache.
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
) -> MannWhitneyArrays:
    """:func:`mann_whitney_batch` as columns, for callers that vectorise what follows."""
    x, y = _validated(experiment, control, confidence, tolerance)
    zq = z_quantile(confidence)
    b = x.shape[0]
    # One scratch buffer for the pairwise differences, reused by every chunk.
    scratch = np.empty((max(1, min(chunk, b)), x.shape[1] * y.shape[1]))
    parts = [
        _chunk(x[a : a + chunk], y[a : a + chunk], zq, scratch[: min(chunk, b - a)],
               tolerance=tolerance)
        for a in range(0, b, chunk)
    ]  # fmt: skip
    if parts:
        columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
    else:
        columns = [np.empty(0)] * 7 + [np.empty(0, dtype=bool)] * 3
    u, z, p, lower, upper, estimate, band, above, below, constant = columns
    return MannWhitneyArrays(
        u=u, z=z, p_value=p, lower=lower, upper=upper, estimate=estimate, band=band,
        above_band=above, below_band=below, constant=constant, confidence=confidence,
    )  # fmt: skip


def _tie_term(sorted_rows: FloatArray) -> FloatArray:
    """Σ(t³ − t) over the runs of equal values in each sorted row (the tie correction): run
    lengths from the run starts of the flattened rows, summed per row with one bincount."""
    b, n = sorted_rows.shape
    equal_next = sorted_rows[:, 1:] == sorted_rows[:, :-1]
    if not equal_next.any():
        return np.zeros(b)
    new_run = np.ones((b, n), dtype=bool)
    new_run[:, 1:] = ~equal_next
    starts = np.flatnonzero(new_run)
    lengths = np.diff(np.append(starts, b * n)).astype(np.float64)
    return np.asarray(
        np.bincount(starts // n, weights=lengths**3 - lengths, minlength=b), dtype=np.float64
    )


def _sigma(n: int, m: int, tie_term: FloatArray) -> FloatArray:
    total = n + m
    var = n * m / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    return np.sqrt(np.clip(var, 0.0, None))


def _chunk(
    x: FloatArray,
    y: FloatArray,
    zq: float,
    diffs: FloatArray,
    *,
    tolerance: float | None,
) -> tuple[npt.NDArray[Any], ...]:
    b, n = x.shape
    m = y.shape[1]
    pairs = n * m
    np.subtract(x[:, :, None], y[:, None, :], out=diffs.reshape(b, n, m))
    diffs.sort(axis=1)  # in place: the sorted differences give U, the interval and the estimate

    # Every count the test needs in one binary search over the sorted rows: pairs below and
    # not above 0 (for U) and ±band (for the band test). "< v" is "≤ the float just below v".
    band: FloatArray = np.zeros(b)
    if tolerance is not None:
        half = pairs // 2
        middle = diffs[:, half] if pairs % 2 else 0.5 * (diffs[:, half - 1] + diffs[:, half])
        band = tolerance * np.abs(middle)
    points = np.stack([np.zeros(b), band, -band], axis=1)
    counts = _count_le(diffs, np.concatenate([np.nextafter(points, -np.inf), points], axis=1))
    less, not_above = counts[:, :3], counts[:, 3:]
    # U of the experiment: pairs with x_i > y_j, ties counted one half.
    u = (pairs - not_above[:, 0]) + 0.5 * (not_above[:, 0] - less[:, 0])

    # p-value as scipy's asymptotic method: ties over the pooled sample at d = 0.
    pooled = _tie_term(np.sort(np.concatenate([x, y], axis=1), axis=1))
    sigma = _sigma(n, m, pooled)
    u_big = np.maximum(u, pairs - u)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (u_big - pairs / 2.0 - 0.5) / sigma
        p = np.clip(2.0 * special.ndtr(-z), 0.0, 1.0)
    p = np.where(np.isnan(p), 1.0, p)

    # Interval: σ between the jump points counts ties within each sample only.
    xs = np.sort(x, axis=1)
    ys = np.sort(y, axis=1)
    sigma0 = _sigma(n, m, _tie_term(xs) + _tie_term(ys))
    lower = _root(diffs, zq * sigma0)
    upper = _root(diffs, -zq * sigma0)
    half = pairs // 2
    # A copy, not a view: the scratch buffer of the differences is reused by the next chunk.
    estimate = diffs[:, half].copy() if pairs % 2 else 0.5 * (diffs[:, half - 1] + diffs[:, half])

    above: npt.NDArray[np.bool_] = np.zeros(b, dtype=bool)
    beneath: npt.NDArray[np.bool_] = np.zeros(b, dtype=bool)
    if tolerance is not None:
        above = _w_at(x, y, band, less=less[:, 1], not_above=not_above[:, 1], sigma0=sigma0) > zq
        beneath = (
            _w_at(x, y, -band, less=less[:, 2], not_above=not_above[:, 2], sigma0=sigma0) < -zq
        )
    else:
        band = np.full(b, np.nan)
    constant = (xs[:, 0] == xs[:, -1]) & (ys[:, 0] == ys[:, -1])
    return u, z, p, lower, upper, estimate, band, above, beneath, constant


def _w_at(
    x: FloatArray, y: FloatArray, shift: FloatArray,
    *, less: FloatArray, not_above: FloatArray, sigma0: FloatArray,
) -> FloatArray:  # fmt: skip
    """R's W(d) at d = ``shift`` per row, exactly, from the counts of pairwise differences
    below and not above d: U of (x − d, y) with ties counted ½, and σ from the pooled ties of
    (x − d, y). Those include cross ties only when d is itself a pairwise difference — the
    case that matters for zero-inflated data, where the band is 0 — so σ is recomputed for
    those rows alone; elsewhere it is σ₀."""
    n = x.shape[1]
    m = y.shape[1]
    pairs = n * m
    u = (pairs - not_above) + 0.5 * (not_above - less)
    sigma = sigma0.copy()
    hit = not_above > less
    if hit.any():
        pooled = np.sort(np.concatenate([x[hit] - shift[hit, None], y[hit]], axis=1), axis=1)
        sigma[hit] = _sigma(n, m, _tie_term(pooled))
    dz = u - pairs / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (dz - 0.5 * np.sign(dz)) / sigma
    return np.where(np.isfinite(w), w, 0.0)


def _count_le(sorted_rows: FloatArray, values: FloatArray) -> FloatArray:
    """Per row r and column c, how many entries of row r are ≤ values[r, c]: one binary search
    over all rows and columns at once, by flat indexing."""
    b, n = sorted_rows.shape
    flat = sorted_rows.reshape(-1)
    base = (np.arange(b, dtype=np.intp) * n)[:, None]
    lo = np.zeros(values.shape, dtype=np.intp)  # invariant: the first lo entries are ≤ value
    hi = np.full(values.shape, n, dtype=np.intp)  # and entries from hi on are > value
    for _ in range(n.bit_length()):
        mid = (lo + hi) >> 1
        passes = flat[base + np.minimum(mid, n - 1)] <= values
        active = lo < hi
        lo = np.where(active & passes, mid + 1, lo)
        hi = np.where(active & ~passes, mid, hi)
    return lo.astype(np.float64)


def _root(diffs: FloatArray, c: FloatArray) -> FloatArray:
    """The jump point where W(d) − z_q changes sign, given c = z_q·σ₀ per row.

    On the step after the k-th smallest difference, U − nm/2 = nm/2 − k, so the step value is
    h(k) = nm/2 − k − ½·sign(nm/2 − k), non-increasing in k. The root is D₍k*₎ with
    k* = min{k : h(k) ≤ c}: for c ≥ 0 that is ⌈nm/2 − ½ − c⌉ and for c < 0 it is
    ⌈nm/2 + ½ − c⌉. A k* of 0 means W ≤ z_q already at the smallest difference (the solver's
    lower end); past nm the largest difference is the answer (its upper end).
    """
    pairs = diffs.shape[1]
    centre = pairs / 2.0
    k = np.where(c >= 0, np.ceil(centre - 0.5 - c), np.ceil(centre + 0.5 - c))
    k = np.clip(k, 1, pairs).astype(np.intp)
    return np.take_along_axis(diffs, (k - 1)[:, None], axis=1)[:, 0]
