"""Kayenta's band test on the Mann-Whitney shift: does the test at d = ±band reject?

R's statistic at a shift d, for experiment x and control y (``wilcox.test``'s W(d)):

    W(d) = (U(d) − nm/2 − ½·sign(U(d) − nm/2)) / σ(d),

U(d) the U statistic of (x − d, y) with ties counted ½ and σ(d) from the ties of the pooled
(x − d, y). High needs W(+band) > z, Low W(−band) < −z. Comparisons of x_i − y_j with d are
exact (an error-free transformation gives the rounding error of each difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from judges.arrays import BoolArray, FloatArray, IntArray

__all__ = ["Band", "band_tests", "sigma", "step"]


def sigma(n: int, m: int, tie_term: FloatArray) -> FloatArray:
    """σ of U for sample sizes n, m and the tie term Σ(t³ − t) (Lehmann 1975, §1.4)."""
    total = n + m
    var = n * m / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    return np.sqrt(np.clip(var, 0.0, None))


def step(pairs: int, k: IntArray) -> FloatArray:
    """h(k): U − nm/2 with continuity correction on the step after the k-th difference."""
    centre = pairs / 2.0 - k
    return np.asarray(centre - 0.5 * np.sign(centre), dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class Band:
    """What the band tests need of a chunk: the sorted samples, ±band, and the test's pieces."""

    x: FloatArray
    y: FloatArray
    band: FloatArray
    zq: float | FloatArray
    """The normal quantile: one for all rows, or one per row (a widened test)."""
    u: FloatArray
    sigma: FloatArray
    """σ with the pooled ties at d = 0."""
    sigma0: FloatArray
    """σ with the ties within each sample (between the jump points)."""
    tie_within: FloatArray
    longest: FloatArray
    """Longest run of equal values in x plus that in y."""


def band_tests(
    bt: Band, *, lower: FloatArray, upper: FloatArray, k_lower: IntArray, k_upper: IntArray
) -> tuple[BoolArray, BoolArray]:
    """W(+band) > z ("above") and W(−band) < −z ("below") per row, R's W(d) exactly.

    Away from the jump points W(d) = h(#{D ≤ d})/σ₀, so W(+band) > z ⟺ fewer than k* = k_lower
    differences lie at or below +band ⟺ lower > +band; likewise W(−band) < −z ⟺ upper < −band.
    At a jump point d — t pairs with x_i − y_j = d exactly — U moves by t/2 and σ shrinks by
    the ties those pairs create, by at most σ₀ − σ(d) ≤ 3t·K·(p + q)/σ₀ with K = nm/(12N(N−1))
    and p, q the longest runs of equal values in x and y. While z·3tK(p + q)/σ₀ ≤ t/2, that is
    6·z·K·(p + q) ≤ σ₀, W(d) stays on the side of its neighbouring steps and the comparison
    with the interval decides. Rows where the band IS an interval end, where that bound fails,
    where k* fell outside 1..nm, or where a step is within rounding of z·σ₀ are evaluated
    literally (:func:`_w_exact`); at d = 0 that is the test's own U and pooled σ.
    """
    n, m = bt.x.shape[1], bt.y.shape[1]
    pairs, total = n * m, n + m
    c = bt.zq * bt.sigma0
    calm = 6.0 * bt.zq * pairs / (12.0 * total * (total - 1)) * bt.longest <= bt.sigma0
    margin = 1e-9 * np.maximum(1.0, c)

    def clear(k: IntArray, level: FloatArray) -> BoolArray:
        inside = (k >= 1) & (k <= pairs)
        return np.asarray(
            inside
            & (np.abs(step(pairs, k) - level) > margin)
            & (np.abs(step(pairs, k - 1) - level) > margin),
            dtype=np.bool_,
        )

    above = lower > bt.band
    exact_above = ~clear(k_lower, c) | (lower == bt.band) | ((lower < bt.band) & ~calm)
    beneath = upper < -bt.band
    exact_below = ~clear(k_upper, -c) | (upper == -bt.band) | ((upper > -bt.band) & ~calm)
    for flags, exact, sign in ((above, exact_above, 1.0), (beneath, exact_below, -1.0)):
        rows = np.flatnonzero(exact)
        if not rows.size:
            continue
        w = _w_exact(bt, rows, sign * bt.band[rows])
        zq = bt.zq if isinstance(bt.zq, float) else bt.zq[rows]
        flags[rows] = w > zq if sign > 0 else w < -zq
    return above, beneath


def _w_exact(bt: Band, rows: npt.NDArray[np.intp], shift: FloatArray) -> FloatArray:
    """R's W(d) at d = ``shift`` for the given rows, with exact comparisons x_i − y_j vs d:
    U of (x − d, y) with ties counted ½, σ from the pooled ties of (x − d, y)."""
    n, m = bt.x.shape[1], bt.y.shape[1]
    pairs = n * m
    zero = shift == 0
    w = np.empty(rows.size)
    # At d = 0 the pooled sample is the test's own: U and σ are known.
    dz0 = bt.u[rows[zero]] - pairs / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        w[zero] = (dz0 - 0.5 * np.sign(dz0)) / bt.sigma[rows[zero]]
    rest = np.flatnonzero(~zero)
    if rest.size:
        at = rows[rest]
        d = shift[rest][:, None, None]
        x, y = bt.x[at][:, :, None], bt.y[at][:, None, :]
        with np.errstate(over="ignore", invalid="ignore"):
            diff = x - y
            back = diff - x
            err = (x - (diff - back)) + (-y - back)
        on = diff == d
        less = (diff < d) | (on & (err < 0))
        equal = on & (err == 0)
        le = (less | equal).sum(axis=(1, 2))
        lt = less.sum(axis=(1, 2))
        # Pairs tied at d merge a run of p equal x with one of q equal y: Σ(t³ − t) grows by
        # 3pq(p + q); per x_i that is 3·q_i·(p_i + q_i), q_i its tied y, p_i its run in x.
        tied = equal.sum(axis=2)
        run = (x[:, :, 0][:, :, None] == x[:, :, 0][:, None, :]).sum(axis=2)
        grown = (3.0 * tied * (run + tied)).sum(axis=1)
        spread = sigma(n, m, bt.tie_within[at] + grown)
        u = (pairs - le) + 0.5 * (le - lt)
        dz = u - pairs / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            w[rest] = (dz - 0.5 * np.sign(dz)) / spread
    return np.where(np.isfinite(w), w, 0.0)
