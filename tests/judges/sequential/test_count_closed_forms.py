"""sequential_count against the binomial likelihood ratio of Lindon & Malek (NeurIPS 2022)
recomputed from ``scipy.stats.binom.logpmf``: the grid-mixture e-value, its confidence sequence
and the non-inferiority e-value by brute force over the documented grid (r = 100^(i/200),
alternatives r ≤ 50), and the quasi-Poisson tempering from its definition.

``savvi`` (Lindon's reference package) was tried as a further oracle and left out: 0.3.1 installs
but does not import without matplotlib (an undeclared dependency of ``savvi.utils``), pulls in
cvxpy, and implements a different mixture (a conjugate Dirichlet/Beta prior on θ with one fixed
ρ), so its e-values are not comparable number for number with the grid mixture over r.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import special, stats

from judges.labels import Direction
from judges.sequential import count as seq
from judges.sequential.count import sequential_count
from support.count_streams import count_stream

FloatArray = npt.NDArray[np.float64]

ALPHA = 0.05
THRESHOLD = 1.0 / ALPHA
N_STREAMS = 2_000
LOOKS = 60
# α plus two binomial standard errors at 2,000 streams: ≈ 0.0597.
MARGIN = ALPHA + 2.0 * math.sqrt(ALPHA * (1.0 - ALPHA) / N_STREAMS)

# The documented grid: log r = i·h, h = log(100)/200, i = −200..200; alternatives i = 1..170.
H = math.log(100.0) / 200.0
GRID = np.arange(-200, 201)
ALT = np.arange(1, 171)


def binom_log_m(
    ea: FloatArray, na: FloatArray, eb: FloatArray, nb: FloatArray, log_r: float
) -> float:
    """log Mₜ(r) from the binomial pmf: Σₖ log Bin(eB; eA + eB, θk(r)) − log Bin(eB; ·, ρk)."""
    keep = np.isfinite(ea + na + eb + nb) & (na > 0) & (nb > 0) & (ea + eb > 0)
    ea, na, eb, nb = ea[keep], na[keep], eb[keep], nb[keep]
    rho = nb / (na + nb)
    r = math.exp(log_r)
    theta = rho * r / (1.0 - rho + rho * r)
    total = ea + eb
    return float(np.sum(stats.binom.logpmf(eb, total, theta) - stats.binom.logpmf(eb, total, rho)))


def binom_log_m_grid(
    ea: FloatArray, na: FloatArray, eb: FloatArray, nb: FloatArray, steps: npt.NDArray[np.int_]
) -> FloatArray:
    """log Mₜ(r) at r = exp(i·h) for each grid index i in ``steps``."""
    return np.array([binom_log_m(ea, na, eb, nb, i * H) for i in steps])


def log_mean_exp(values: FloatArray) -> float:
    """log of the mean of exp(values)."""
    return float(special.logsumexp(values) - math.log(values.size))


class TestCountClosedForms:
    """sequential_count against the binomial likelihood ratio recomputed from scipy."""

    @pytest.mark.parametrize("i", [1, 17, 48, 170, -30])
    def test_log_likelihood_ratio_is_the_binomial_pmf_ratio(self, i: int) -> None:
        """log Mₜ(r) at one grid r equals Σ log Bin(eB; T, θ(r)) − log Bin(eB; T, ρ)."""
        ea, na, eb, nb = count_stream(1, ratio=1.7)
        log_m = seq._log_lr(ea, eb, nb / (na + nb))
        assert log_m[200 + i] == pytest.approx(binom_log_m(ea, na, eb, nb, i * H), rel=1e-10)

    @pytest.mark.parametrize(("ratio", "seed"), [(1.0, 2), (1.5, 3), (3.0, 4), (0.6, 5)])
    def test_e_value_is_the_mean_over_the_grid_alternatives(self, ratio: float, seed: int) -> None:
        """Untempered, the e-value is the plain mean of Mₜ(r) over r = 100^(i/200), i = 1..170."""
        ea, na, eb, nb = count_stream(seed, ratio=ratio)
        result = sequential_count(ea, na, eb, nb, temper=False)
        brute = log_mean_exp(binom_log_m_grid(ea, na, eb, nb, ALT))
        assert math.log(result.e_value) == pytest.approx(brute, rel=1e-9, abs=1e-9)
        assert result.failed is (result.e_value >= THRESHOLD)

    def test_decrease_mixes_the_alternatives_below_one(self) -> None:
        """direction=decrease averages Mₜ(r) over r = 100^(−i/200), i = 1..170."""
        ea, na, eb, nb = count_stream(6, ratio=0.5)
        result = sequential_count(ea, na, eb, nb, temper=False, direction=Direction.DECREASE)
        brute = log_mean_exp(binom_log_m_grid(ea, na, eb, nb, -ALT))
        assert math.log(result.e_value) == pytest.approx(brute, rel=1e-9)

    def test_either_takes_the_larger_side_at_twice_the_threshold(self) -> None:
        """direction=either: max of the one-sided e-values, failing at 2m/α (Bonferroni)."""
        ea, na, eb, nb = count_stream(7, ratio=2.0)
        up = sequential_count(ea, na, eb, nb, temper=False)
        down = sequential_count(ea, na, eb, nb, temper=False, direction=Direction.DECREASE)
        both = sequential_count(ea, na, eb, nb, temper=False, direction=Direction.EITHER)
        assert both.e_value == pytest.approx(max(up.e_value, down.e_value), rel=1e-12)
        assert both.threshold == 2 * THRESHOLD

    @pytest.mark.parametrize(("ratio", "seed"), [(1.4, 8), (1.0, 9), (0.8, 10)])
    def test_bounds_invert_the_one_sided_tests(self, ratio: float, seed: int) -> None:
        """lower is the smallest grid r₀ whose mixture of Mₜ(r)/Mₜ(r₀) over the 170 grid r above
        r₀ stays below 1/α; upper the largest whose mixture over the 170 below does."""
        ea, na, eb, nb = count_stream(seed, ratio=ratio, lam=2.0)
        result = sequential_count(ea, na, eb, nb, temper=False)
        log_m = binom_log_m_grid(ea, na, eb, nb, GRID)

        def log_e(p: int, offsets: npt.NDArray[np.int_]) -> float:
            idx = p + offsets
            idx = idx[(idx >= 0) & (idx <= 400)]
            return log_mean_exp(log_m[idx] - log_m[p]) if idx.size else 0.0

        line = math.log(THRESHOLD)
        lower = min(p for p in range(401) if log_e(p, ALT) < line)
        upper = max(p for p in range(401) if log_e(p, -ALT) < line)
        assert result.lower == pytest.approx(math.exp((lower - 200) * H), rel=1e-12)
        assert result.upper == pytest.approx(math.exp((upper - 200) * H), rel=1e-12)
        assert result.lower <= result.estimate <= result.upper
        assert result.estimate == pytest.approx(math.exp((int(np.argmax(log_m)) - 200) * H))

    @pytest.mark.parametrize("tolerance", [1.2, 1.5])
    def test_non_inferiority_mixes_below_the_tolerance(self, tolerance: float) -> None:
        """proven ⇔ the mean of Mₜ(r)/Mₜ(r₀) over the 170 grid r below r₀ = tolerance (snapped
        down to the grid) reaches 1/α."""
        for seed in range(20):
            ea, na, eb, nb = count_stream(100 + seed, steps=60, lam=30.0)
            result = sequential_count(ea, na, eb, nb, temper=False, tolerance=tolerance)
            i0 = math.floor(math.log(tolerance) / H + 1e-9)
            below = np.arange(i0 - 170, i0)
            log_m = binom_log_m_grid(ea, na, eb, nb, np.append(below, i0))
            log_e = log_mean_exp(log_m[:-1] - log_m[-1])
            if abs(log_e - math.log(THRESHOLD)) > 1e-6:
                assert result.proven is (log_e >= math.log(THRESHOLD)), seed

    def test_tempering_divides_the_log_likelihood_by_the_arms_dispersion(self) -> None:
        """Overdispersed counts: φ = (χ²_A + χ²_B + 4)/(df_A + df_B + 1), each arm's Pearson χ²
        about its exposure-proportional mean, and the e-value is the mean of Mₜ(r)^(1/φ)."""
        rng = np.random.default_rng(9)
        rate = rng.gamma(0.5, 8.0, size=(2, 50))  # bursty: a gamma rate per step and arm
        ea, eb = (rng.poisson(rate[j]).astype(np.float64) for j in range(2))
        na, nb = rng.poisson(1000, 50).astype(np.float64), rng.poisson(900, 50).astype(np.float64)
        result = sequential_count(ea, na, eb, nb)

        def pearson(e: FloatArray, n: FloatArray) -> float:
            mu = n * e.sum() / n.sum()
            return float(np.sum((e - mu) ** 2 / mu))

        phi = (pearson(ea, na) + pearson(eb, nb) + 4.0) / (49 + 49 + 1)
        assert phi > 2.0
        assert result.dispersion == pytest.approx(phi, rel=1e-12)
        brute = log_mean_exp(binom_log_m_grid(ea, na, eb, nb, ALT) / phi)
        assert math.log(result.e_value) == pytest.approx(brute, rel=1e-9, abs=1e-9)

    def test_a_constant_ratio_regression_does_not_inflate_the_dispersion(self) -> None:
        """Poisson arms at a 3× ratio: each arm is Poisson about its own rate, so φ stays near 1
        (the share's Pearson statistic at the fitted ratio would not, after an onset)."""
        ea, na, eb, nb = count_stream(21, steps=60, ratio=3.0, lam=5.0)
        assert sequential_count(ea, na, eb, nb).dispersion < 1.4

    def test_no_events_decide_nothing(self) -> None:
        """All-zero errors on both sides (a zero-error baseline, A/A): e = 1, nothing proven."""
        zeros, exposure = np.zeros(30), np.full(30, 300.0)
        result = sequential_count(zeros, exposure, zeros, exposure)
        assert (result.e_value, result.failed, result.proven, result.steps) == (
            1.0,
            False,
            False,
            0,
        )
        assert result.reason == "no events yet"
