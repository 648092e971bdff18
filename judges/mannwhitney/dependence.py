"""Serial dependence in the Mann-Whitney test: a variance inflation from an effective sample size.

The rank-sum test assumes each side's values are independent. Per-step latency quantiles and
gauges are autocorrelated, and a query whose range is longer than the step (``[10s]`` at a 2 s
step) makes neighbouring samples share data; either way Var(U) is larger than the
independent-sample formula says and the test rejects far more often than its level.

What this module computes (``dependence: adjust``, never on the Kayenta-compatible path):

1. Asymptotically U − nm/2 ≈ m·Σᵢ(F(xᵢ) − ½) − n·Σⱼ(F(yⱼ) − ½), a sum over each side of a
   stationary sequence; under strong mixing the statistic stays normal with a variance that
   carries the autocovariances of F(X) (Serfling 1968, "The Wilcoxon two-sample statistic on
   strongly mixing processes", Ann. Math. Statist. 39). With the independent-sample variance
   n/12 of Σ F(xᵢ) replaced by n²/(12·n_eff),

       Var(U) ≈ n²m²/12 · (1/n_eff,x + 1/n_eff,y),

   so the variance grows by the factor f = nm·(1/n_eff,x + 1/n_eff,y)/(n + m) (f = n/n_eff for
   equal sides), which :func:`variance_factor` returns.
2. The effective sample size of an AR(1) sequence with lag-1 autocorrelation r,
   n_eff = n·(1 − r)/(1 + r) (Bayley & Hammersley 1946, "The 'effective' number of independent
   observations in an autocorrelated time series", JRSS Suppl. 8; the equivalent sample size of
   Zwiers & von Storch 1995, "Taking serial correlation into account in tests of the mean",
   J. Climate 8), clipped to [2, n]: a negative r never makes the test bolder than the plain one.
3. r is estimated on the ranks of each side in time order (F(X) is what the statistic sums),
   pooled over both sides (the two arms run the same service), and corrected for its downward
   bias, E[r₁] ≈ ρ − (1 + 4ρ)/n to first order when the mean is estimated (Kendall 1954, "Note on
   bias in the estimation of autocorrelation", Biometrika 41; Marriott & Pope 1954, ibid.):
   ρ̂ = (n̄·r₁ + 1)/(n̄ − 4), with n̄ the mean side length.

4. The variance is estimated (through r), which a normal quantile ignores: as in the
   equivalent-sample-size t-test of Zwiers & von Storch (1995), the statistic is referred to
   Student's t with n_eff,x + n_eff,y − 2 degrees of freedom, i.e. the variance is further
   multiplied by (t_df/z)² (about 1.03 for 60 independent samples a side).

Zwiers & von Storch also show that a plug-in equivalent sample size still leaves the test
somewhat liberal on short, strongly dependent series (the estimate of r is noisy): the
adjustment brings a dependent A/A comparison close to the nominal level from tens of samples
per side, not exactly to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import special, stats

from judges.arrays import FloatArray

__all__ = [
    "Dependence",
    "Inflation",
    "effective_size",
    "inflation",
    "lag1_autocorrelation",
    "t_widening",
    "variance_factor",
    "widening",
]

_MAX_R = 0.999
"""r is clipped below 1 so that n_eff stays finite before its own clip to [2, n]."""


class Dependence(StrEnum):
    """How the Mann-Whitney judge treats serially dependent samples."""

    NONE = "none"
    """Kayenta's semantics: samples are taken as independent."""
    ADJUST = "adjust"
    """The variance of U is inflated by an effective sample size (this module)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Inflation:
    """One comparison's dependence adjustment, for the evidence."""

    r1: float
    """Bias-corrected lag-1 autocorrelation of the ranks, pooled over both sides."""
    n_eff_experiment: float
    n_eff_control: float
    factor: float
    """Var(U) with dependence over Var(U) without (≥ 1)."""


def _rows(values: FloatArray, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        msg = f"{name} must be a non-empty B×n array, got shape {arr.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(arr)):
        msg = f"{name} contains NaN or infinite values; apply a NaN strategy first"
        raise ValueError(msg)
    return arr


def _lag1_parts(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Σ aₜaₜ₊₁ and Σ aₜ² of each row's centred mid-ranks (in the rows' order)."""
    ranks = stats.rankdata(rows, axis=1)
    ranks -= ranks.mean(axis=1, keepdims=True)
    lagged = np.einsum("ij,ij->i", ranks[:, 1:], ranks[:, :-1])
    return lagged, np.einsum("ij,ij->i", ranks, ranks)


def lag1_autocorrelation(experiment: FloatArray, control: FloatArray) -> FloatArray:
    """Per row, the pooled, bias-corrected lag-1 autocorrelation of both sides' ranks (step 3);
    0 where it is undefined (a constant side, or too few values to correct the bias)."""
    x, y = _rows(experiment, "experiment"), _rows(control, "control")
    if x.shape[0] != y.shape[0]:
        msg = f"experiment and control must have as many rows, got {x.shape} and {y.shape}"
        raise ValueError(msg)
    lx, sx = _lag1_parts(x)
    ly, sy = _lag1_parts(y)
    total = sx + sy
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(total > 0, (lx + ly) / total, 0.0)
    mean_n = (x.shape[1] + y.shape[1]) / 2.0
    if mean_n <= 4.0:
        return np.zeros(x.shape[0])
    corrected = np.where(total > 0, (mean_n * r + 1.0) / (mean_n - 4.0), 0.0)
    return np.asarray(np.clip(corrected, -_MAX_R, _MAX_R), dtype=np.float64)


def effective_size(n: int, r1: FloatArray | float) -> FloatArray:
    """n·(1 − r)/(1 + r) clipped to [2, n] (step 2; n itself when n < 2)."""
    r = np.clip(np.asarray(r1, dtype=np.float64), -_MAX_R, _MAX_R)
    floor = min(2.0, float(n))
    return np.asarray(np.clip(n * (1.0 - r) / (1.0 + r), floor, float(n)), dtype=np.float64)


def variance_factor(n: int, m: int, n_eff_x: FloatArray, n_eff_y: FloatArray) -> FloatArray:
    """f = nm·(1/n_eff,x + 1/n_eff,y)/(n + m): Var(U) with dependence over without (step 1)."""
    factor = n * m * (1.0 / n_eff_x + 1.0 / n_eff_y) / (n + m)
    return np.asarray(np.maximum(factor, 1.0), dtype=np.float64)


def t_widening(confidence: float, df: FloatArray) -> FloatArray:
    """(t_df / z)² at the two-sided ``confidence``: the variance is itself estimated, so the
    statistic is referred to Student's t on df = n_eff,x + n_eff,y − 2 (step 4)."""
    if not 0.0 < confidence < 1.0:
        msg = f"confidence must lie in (0, 1), got {confidence!r}"
        raise ValueError(msg)
    q = 1.0 - (1.0 - confidence) / 2.0
    ratio = stats.t.ppf(q, np.maximum(df, 1.0)) / special.ndtri(q)
    return np.asarray(ratio * ratio, dtype=np.float64)


def widening(experiment: FloatArray, control: FloatArray, confidence: float) -> FloatArray:
    """Per row, the factor the test's variance is multiplied by (steps 1–4, ≥ 1)."""
    return np.asarray([a.factor for a in inflation(experiment, control, confidence)])


def inflation(experiment: FloatArray, control: FloatArray, confidence: float) -> list[Inflation]:
    """Every row's adjustment: row i of ``experiment`` (B×n, time order) against row i of
    ``control`` (B×m), for a test at ``confidence``."""
    r = lag1_autocorrelation(experiment, control)
    n, m = np.shape(experiment)[1], np.shape(control)[1]
    ex, ct = effective_size(n, r), effective_size(m, r)
    factor = variance_factor(n, m, ex, ct) * t_widening(confidence, ex + ct - 2.0)
    return [
        Inflation(r1=float(ri), n_eff_experiment=float(a), n_eff_control=float(b), factor=float(f))
        for ri, a, b, f in zip(r.tolist(), ex.tolist(), ct.tolist(), factor.tolist(), strict=True)
    ]
