"""Anytime-valid sequential judges: counts (rate ratio) and gauges (mean difference).

Both are pure functions of the cumulative per-step data, so the daemon recomputes them exactly
after a restart, and both may be looked at after every step: the false-rollback guarantee holds
however often they are evaluated (Ville's inequality: a nonnegative supermartingale started at 1
reaches 1/α with probability at most α).

``sequential_count`` — Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data"
(NeurIPS 2022), specialised to two arms. In step k the baseline saw eA events over exposure nA
and the canary eB over nB. With Poisson events, the arm of one event is Bernoulli: canary with
probability θk(r) = ρk·r / (1 − ρk + ρk·r), ρk = nB/(nA + nB), where r is the canary/baseline
rate ratio. The likelihood ratio of r against r = 1 accumulates

    log Mₜ(r) = Σₖ eB·log(θk(r)/ρk) + eA·log((1 − θk(r))/(1 − ρk)).

For each fixed r > 1, Mₜ(r) is a test martingale under r = 1 and a supermartingale under any
r < 1 (θ is increasing in r), so its average over a grid of r > 1 (uniform in log r) is an
e-process for "no regression" (H₀: r ≤ 1). Early promotion needs non-inferiority proven the
same way as a regression: the one-sided mixture of Mₜ(r)/Mₜ(r₀) over the grid r < r₀ at
r₀ = ``tolerance`` (snapped down to the grid, which is conservative) is an e-process for
H₀: r ≥ tolerance. The reported bounds invert these same one-sided tests at every grid r₀:
``lower`` is the smallest r₀ whose "r ≤ r₀" e-value (mixing Mₜ(r)/Mₜ(r₀) over r above r₀) stays
below the threshold, ``upper`` the largest whose "r ≥ r₀" e-value does. Each is an anytime-valid
one-sided bound at the judge's level, and they agree with the verdicts by construction: the
judge fails exactly when ``lower`` > 1 and proves non-inferiority only with ``upper`` below the
tolerance. (log Mₜ is concave in log r, so each e-value is monotone in r₀ and a bisection finds
the edge.)

**Assumption, and what happens when it fails.** The binomial model needs the events of a step
to be independent given its rates (Poisson counts). Bursty errors (a rate multiplied per step
and arm by a gamma draw: negative-binomial counts, variance φ·mean) break it: a burst of five
errors on one arm is one incident, not five pieces of evidence, and the untempered e-process
then rolls back healthy canaries. The evidence is therefore tempered, log Mₜ / φ̂ — the
quasi-likelihood of Wedderburn (1974) and McCullagh & Nelder (1989, §9.2) — where φ̂ is the
quasi-Poisson dispersion of each arm's own counts about its exposure-proportional mean
(Pearson χ² over its degrees of freedom, the two arms pooled): if both arms' counts have
variance φ·mean, the canary's share given the step's events has variance φ·nθ(1 − θ), the very
variance the tempering assumes. Unlike the Pearson statistic of the share at the fitted ratio
(the earlier estimate), a regression does not inflate it — a constant-ratio canary is still
Poisson — so plain Poisson regressions keep their speed; a canary whose rate jumps mid-run does
inflate its own arm's dispersion and is caught a few steps later. Before there is data φ̂ would
be unknown, and a single burst in the first minute would decide, so φ̂ is shrunk towards a
conservative prior: one pseudo degree of freedom at φ = 4,

    φ̂ = max(1, (χ²_A + χ²_B + 4) / (df_A + df_B + 1)),

which tempers the first steps by up to 4 and fades within minutes (this replaces the floor of
five informative steps; ``min_steps`` stays as an option). The mixture of Mₜ(r)^(1/φ) is convex
in 1/φ, so it never exceeds max(1, the untempered e-value): tempering by any data-dependent
φ ≥ 1 keeps the guarantee exactly for Poisson data. For overdispersed data the guarantee is the
quasi-likelihood's approximation, checked by simulation (bench/quality.py and the A/A tests:
sparse negative-binomial counts, variance 3× mean, over 240 looks; gamma-Poisson with shape 2).
What still breaks it: bursts shared by both arms are harmless, but bursts whose size grows
without bound, or a dispersion that changes abruptly late in a run, are only tempered as fast
as φ̂ learns them.

The gauge judge, ``sequential_mean``, lives in ``judges.sequential.mean``.

Several sequential metrics share a canary's α by e-Bonferroni: with m metrics, metric j fails at
eⱼ ≥ m/α (valid under any dependence, Vovk & Wang 2021); each reported bound is one-sided at
that level, so [lower, upper] together cover the truth at all times with probability ≥ 1 − 2α/m.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from judges.arrays import BoolArray, FloatArray
from judges.labels import Direction
from judges.sequential.ebonferroni import check_alpha, e_bonferroni_threshold
from judges.sequential.result import SequentialResult, verdict_reason

__all__ = ["sequential_count"]

# log-ratio grid: u = i·h for i in −GRID_HALF..GRID_HALF, so r spans [1/100, 100].
_GRID_HALF = 200
_H = math.log(100.0) / _GRID_HALF
_LOG_R = _H * np.arange(-_GRID_HALF, _GRID_HALF + 1, dtype=np.float64)
# Alternatives of the one-sided test: r in (1, 50], uniform in log r on the same grid.
_ALT_MAX = round(math.log(50.0) / _H)
_R_MINUS_1 = np.expm1(_LOG_R)
# The dispersion's prior: one pseudo degree of freedom at φ = 4 (see the module docstring).
_PRIOR_DF = 1.0
_PRIOR_PHI = 4.0


def _clean_counts(*arrays: npt.ArrayLike) -> tuple[FloatArray, ...]:
    cols = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    sizes = {c.size for c in cols}
    if len(sizes) != 1:
        msg = f"events and exposure arrays differ in length: {sorted(sizes)}"
        raise ValueError(msg)
    keep = np.ones(cols[0].size, dtype=bool)
    for col in cols:
        keep &= np.isfinite(col) & (col >= 0)
    return tuple(c[keep] for c in cols)


def _informative(ea: FloatArray, na: FloatArray, eb: FloatArray, nb: FloatArray) -> BoolArray:
    """Steps with exposure on both sides and at least one event: the ones with evidence."""
    return np.asarray((na > 0) & (nb > 0) & (ea + eb > 0), dtype=np.bool_)


def _log_lr(ea: FloatArray, eb: FloatArray, rho: FloatArray) -> FloatArray:
    """log Mₜ(r) on the whole log-ratio grid: Σₖ eB·log(θ/ρ) + eA·log((1−θ)/(1−ρ)).

    With θ = ρr/(1 − ρ + ρr) both logarithms share 1 − ρ + ρr, so the sum is
    EB·log r − Σₖ (eA + eB)·log1p(ρk(r − 1)): one logarithm per step and grid point.
    """
    shares = np.log1p(rho[:, None] * (_R_MINUS_1[None, :]))
    return np.asarray(eb.sum() * _LOG_R - (ea + eb) @ shares, dtype=np.float64)


def _arm_pearson(events: FloatArray, exposure: FloatArray) -> tuple[float, int]:
    """(Pearson χ², degrees of freedom) of one arm's counts about their exposure-proportional
    mean, over the steps with exposure; (0, 0) without events or with a single step."""
    keep = exposure > 0
    e, n = events[keep], exposure[keep]
    total = float(e.sum())
    if total <= 0 or e.size < 2:
        return 0.0, 0
    mu = n * (total / float(n.sum()))
    return float(((e - mu) ** 2 / mu).sum()), int(e.size) - 1


def _dispersion(ea: FloatArray, na: FloatArray, eb: FloatArray, nb: FloatArray) -> float:
    """The pooled quasi-Poisson dispersion of both arms, shrunk towards the prior, ≥ 1."""
    chi_a, df_a = _arm_pearson(ea, na)
    chi_b, df_b = _arm_pearson(eb, nb)
    pooled = (chi_a + chi_b + _PRIOR_DF * _PRIOR_PHI) / (df_a + df_b + _PRIOR_DF)
    return max(1.0, pooled)


def _log_mean_ratio(log_m: FloatArray, window: slice, p: int) -> float:
    """log of the mean of Mₜ(r)/Mₜ(r_p) over the grid points in ``window``, shifted by the
    maximum as ``scipy.special.logsumexp`` (whose per-call overhead, called a dozen times a
    poll by the bisections below, would dominate); 0 (e = 1) for an empty window."""
    values = log_m[window]
    if values.size == 0:
        return 0.0
    top = float(values.max())
    return top + math.log(float(np.exp(values - top).sum()) / values.size) - float(log_m[p])


def _log_e_above(log_m: FloatArray, p: int) -> float:
    """log e-value for H₀: r ≤ r_p — Mₜ(r)/Mₜ(r_p) mixed over the (up to) _ALT_MAX grid points
    above r_p; 0 (e = 1) when there are none."""
    return _log_mean_ratio(log_m, slice(p + 1, p + 1 + _ALT_MAX), p)


def _log_e_below(log_m: FloatArray, p: int) -> float:
    """log e-value for H₀: r ≥ r_p — the mirror image of :func:`_log_e_above`."""
    return _log_mean_ratio(log_m, slice(max(0, p - _ALT_MAX), p), p)


def _count_bounds(log_m: FloatArray, log_threshold: float) -> tuple[float, float]:
    """(lower, upper): the grid edges where the one-sided e-values cross the threshold.

    Bisection from the centre: its first probe is r₀ = 1 itself, so ``lower > 1`` exactly when
    the "r ≤ 1" test fails, even where clipping at the grid's ends bends the monotonicity.
    """
    last = 2 * _GRID_HALF
    lo, hi = 0, last  # lower: invariant "r ≤ r_lo" rejected, "r ≤ r_hi" not (e = 1 at the top)
    if _log_e_above(log_m, lo) < log_threshold:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _log_e_above(log_m, mid) >= log_threshold else (lo, mid)
    lower = hi
    lo, hi = 0, last  # upper: invariant "r ≥ r_lo" not rejected (e = 1 at the bottom), r_hi is
    if _log_e_below(log_m, hi) < log_threshold:
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _log_e_below(log_m, mid) >= log_threshold else (mid, hi)
    return math.exp(_LOG_R[lower]), math.exp(_LOG_R[lo])


def _tolerance_point(tolerance: float) -> tuple[int, int]:
    """Grid indices of r₀ = tolerance snapped down and of r₀ = 1/tolerance snapped up (each
    towards r = 1: the stricter side)."""
    up = math.floor(math.log(tolerance) / _H + 1e-9)
    down = math.ceil(-math.log(tolerance) / _H - 1e-9)
    # Clipped into the grid: a tolerance beyond it has no alternatives on its good side, and an
    # index below 0 would wrap around to the grid's far end.
    return (
        min(max(up, -_GRID_HALF), _GRID_HALF) + _GRID_HALF,
        min(max(down, -_GRID_HALF), _GRID_HALF) + _GRID_HALF,
    )


def _log_e_within(log_m: FloatArray, tolerance: float, direction: Direction) -> float:
    """log e-value for H₀ "the canary is worse than tolerance": alternatives on the good side
    of r₀ = tolerance (r₀ snapped to the grid towards the stricter side)."""
    up, down = _tolerance_point(tolerance)
    match direction:
        case Direction.INCREASE:
            return _log_e_below(log_m, up)
        case Direction.DECREASE:
            return _log_e_above(log_m, down)
        case Direction.EITHER:
            return min(_log_e_below(log_m, up), _log_e_above(log_m, down))


def sequential_count(
    baseline_events: npt.ArrayLike,
    baseline_exposure: npt.ArrayLike,
    canary_events: npt.ArrayLike,
    canary_exposure: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    metrics: int = 1,
    tolerance: float = 1.2,
    direction: Direction = Direction.INCREASE,
    temper: bool = True,
    min_steps: int = 1,
) -> SequentialResult:
    """Anytime-valid test of the canary/baseline event-rate ratio (see the module docstring).

    Missing steps (NaN), steps without exposure on either side and steps without events carry
    no information and are skipped; fewer than ``min_steps`` informative steps decide nothing
    (the e-value and bounds are still reported). ``direction=decrease`` mirrors the test (r < 1
    is the regression) and ``either`` takes the larger of the two one-sided e-values (each at
    2m/α).
    """
    check_alpha(alpha)
    if tolerance <= 0:
        msg = f"tolerance must be > 0, got {tolerance!r}"
        raise ValueError(msg)
    rows = _clean_counts(baseline_events, baseline_exposure, canary_events, canary_exposure)
    phi = _dispersion(*rows) if temper else 1.0
    ea, na, eb, nb = (c[_informative(*rows)] for c in rows)
    sides = 2 if direction is Direction.EITHER else 1
    threshold = e_bonferroni_threshold(alpha, metrics) * sides
    if ea.size == 0:
        return SequentialResult(
            e_value=1.0,
            estimate=math.nan,
            lower=0.0,
            upper=math.inf,
            steps=0,
            failed=False,
            proven=False,
            threshold=threshold,
            reason="no events yet",
        )
    rho = nb / (na + nb)
    log_m = _log_lr(ea, eb, rho)
    best = int(np.argmax(log_m))
    log_m = log_m / phi
    log_e = _one_sided(log_m, direction)
    lower, upper = _count_bounds(log_m, math.log(threshold))
    e_value = math.exp(min(log_e, 700.0))
    enough = ea.size >= min_steps
    proven = enough and _log_e_within(log_m, tolerance, direction) >= math.log(threshold)
    result = SequentialResult(
        e_value=e_value,
        estimate=math.exp(_LOG_R[best]),
        lower=lower,
        upper=upper,
        steps=int(ea.size),
        failed=enough and e_value >= threshold,
        proven=proven,
        threshold=threshold,
        dispersion=phi,
    )
    return _count_reason(result, direction, tolerance, min_steps)


def _one_sided(log_m: FloatArray, direction: Direction) -> float:
    centre = _GRID_HALF
    match direction:
        case Direction.INCREASE:
            return _log_e_above(log_m, centre)
        case Direction.DECREASE:
            return _log_e_below(log_m, centre)
        case Direction.EITHER:
            return max(_log_e_above(log_m, centre), _log_e_below(log_m, centre))


def _count_reason(
    result: SequentialResult, direction: Direction, tolerance: float, min_steps: int
) -> SequentialResult:
    lo, hi, est = result.lower, result.upper, result.estimate
    up = direction is Direction.INCREASE or (direction is Direction.EITHER and lo > 1.0)
    if direction is Direction.INCREASE:
        fine = f"at most {hi:.3g}× proven < tolerance {tolerance:g}"
    elif direction is Direction.DECREASE:
        fine = f"at least {lo:.3g}× proven > 1/tolerance {1.0 / tolerance:.3g}"
    else:
        fine = f"within [{lo:.3g}, {hi:.3g}]× proven, tolerance {tolerance:g}"
    return verdict_reason(
        result,
        estimate=f"rate {est:.3g}× baseline",
        bound=f"at least {lo:.3g}× proven" if up else f"at most {hi:.3g}× proven",
        fine=fine,
        spread=f"bounds [{lo:.3g}, {hi:.3g}]×",
        min_steps=min_steps,
    )
