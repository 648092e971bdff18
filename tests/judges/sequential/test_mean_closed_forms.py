"""sequential_mean against quadrature and closed forms: the normal-mixture e-value of Howard et
al. (2021) by ``scipy.integrate.quad`` over its half-normal mixing density, with the Student-t →
normal score of Jennison & Turnbull's significance-level approach done through
``scipy.stats.t``/``norm``; and the long-run variance (AR(1)-prewhitened Newey–West) against a
direct computation and against the AR(1) long-run variance σ²/(1 − ρ)² by simulation.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import integrate, optimize, stats

from judges.sequential.mean import long_run_variance, sequential_mean

FloatArray = npt.NDArray[np.float64]

ALPHA = 0.05
THRESHOLD = 1.0 / ALPHA


def quad_mean_e(s: float, sigma: float, t: int, rho2: float) -> float:
    """∫₀^∞ exp(λS − λ²σ²t/2) · 2·N(λ; 0, ρ²/σ²) dλ by quadrature (Howard et al. 2021)."""
    scale = math.sqrt(rho2) / sigma

    def integrand(lam: float) -> float:
        log_density = math.log(2.0) + float(stats.norm.logpdf(lam, scale=scale))
        return math.exp(lam * s - lam * lam * sigma * sigma * t / 2.0 + log_density)

    # The integrand peaks at λ* = S/(σ²t + σ²/ρ²); split there so quad sees the bump.
    peak = max(s / (sigma * sigma * (t + 1.0 / rho2)), 0.0)
    left = integrate.quad(integrand, 0.0, peak, limit=200)[0] if peak > 0 else 0.0
    right = integrate.quad(integrand, peak, np.inf, limit=200)[0]
    return left + right


def t_to_normal_sum(s: float, sigma: float, t: int, df: float) -> float:
    """The drift sum whose normal score has the Student-t (``df``) tail of S/(σ√t)."""
    stat = s / (sigma * math.sqrt(t))
    z = stats.norm.isf(stats.t.sf(stat, df)) if stat >= 0 else stats.norm.ppf(stats.t.cdf(stat, df))
    return float(z) * sigma * math.sqrt(t)


def rho2_for(alpha: float, t_opt: int) -> float:
    """Waudby-Smith et al.'s ρ² tuned for t_opt (the module's default tuning is 120)."""
    log_a = math.log(1.0 / alpha)
    return (2.0 * log_a + math.log(2.0 * log_a + 1.0)) / t_opt


class TestMeanClosedForms:
    """sequential_mean against quadrature and the closed-form confidence sequence."""

    @pytest.mark.parametrize(
        ("shift", "t", "tolerance"),
        [(0.0, 8, 0.0), (0.4, 20, 0.0), (1.0, 40, 0.2), (-0.3, 60, 0.1)],
    )
    def test_e_value_is_the_half_normal_mixture_integral(
        self, shift: float, t: int, tolerance: float
    ) -> None:
        """E = ∫₀^∞ exp(λS − λ²σ̂²t/2)·2N(λ; 0, ρ²/σ̂²) dλ with S = Σ(d − δ) mapped from the
        Student-t (ν df) to the normal scale, σ̂² and ν the long-run variance's; quad agrees to
        1e-7."""
        rng = np.random.default_rng(int(100 * shift) + t)
        baseline = rng.normal(10.0, 1.0, t)
        canary = rng.normal(10.0 + shift, 1.0, t)
        result = sequential_mean(baseline, canary, tolerance=tolerance)
        d = canary - baseline
        lrv, nu = long_run_variance(d)
        sigma, df = math.sqrt(float(lrv[0])), float(nu[0])
        s = t_to_normal_sum(float(np.sum(d - tolerance)), sigma, t, df)
        expected = quad_mean_e(s, sigma, t, rho2_for(ALPHA, 120))
        assert result.e_value == pytest.approx(expected, rel=1e-7)

    @pytest.mark.parametrize(("t", "metrics"), [(5, 1), (12, 1), (60, 2), (500, 3)])
    def test_bounds_are_where_the_one_sided_tests_flip(self, t: int, metrics: int) -> None:
        """lower is the tolerance δ at which the regression test's e-value (by quad, above)
        just reaches m/α, upper the mirror; both at d̄ ∓ the same half-width."""
        rng = np.random.default_rng(t)
        baseline, canary = rng.normal(0, 2, t), rng.normal(0.5, 2, t)
        result = sequential_mean(baseline, canary, metrics=metrics)
        d = canary - baseline
        lrv, nu = long_run_variance(d)
        sigma, df, rho2 = math.sqrt(float(lrv[0])), float(nu[0]), rho2_for(ALPHA, 120)

        def gap(delta: float) -> float:
            s = t_to_normal_sum(float(np.sum(d - delta)), sigma, t, df)
            return math.log(quad_mean_e(s, sigma, t, rho2)) - math.log(metrics / ALPHA)

        span = sigma
        while gap(d.mean() - span) < 0:
            span *= 2
        lower = optimize.brentq(gap, d.mean() - span, d.mean(), xtol=1e-12)
        assert result.estimate == pytest.approx(d.mean(), rel=1e-12)
        assert result.lower == pytest.approx(lower, rel=1e-6, abs=1e-9 * sigma)
        assert result.upper == pytest.approx(2 * d.mean() - lower, rel=1e-6, abs=1e-9 * sigma)

    def test_large_samples_match_the_known_variance_boundary(self) -> None:
        """For large t the Student-t mapping vanishes: the half-width tends to σ̂/√t·z*, z*
        solving the known-σ mixture E(z) = 1/α in closed form, and on i.i.d. data σ̂² is the
        sample variance (the long-run variance's floor) to within the prior's pull."""
        t = 20_000
        rng = np.random.default_rng(3)
        d = rng.normal(0, 1, t)
        result = sequential_mean(np.zeros(t), d)
        rho2 = rho2_for(ALPHA, 120)
        v = 1 + rho2 * t

        def gap(score: float) -> float:
            z = score * math.sqrt(rho2 * t / v)
            return (
                math.log(2)
                - 0.5 * math.log(v)
                + z * z / 2
                + stats.norm.logcdf(z)
                - math.log(THRESHOLD)
            )

        score = optimize.brentq(gap, 0.0, 20.0, xtol=1e-12)
        sigma = math.sqrt(float(long_run_variance(d)[0][0]))
        assert sigma == pytest.approx(np.std(d, ddof=1), rel=1e-2)
        half = sigma / math.sqrt(t) * score
        # t_{df} vs normal quantile: a relative (z² + 1)/(4·df) ≈ 2e-4 apart here
        assert (result.upper - result.lower) / 2 == pytest.approx(half, rel=1e-3)

    def test_too_few_steps_decide_nothing(self) -> None:
        """Fewer than min_steps paired steps: e = 1 and an infinite CS, with the reason."""
        result = sequential_mean([1.0, 2.0, 3.0], [9.0, 9.0, 9.0])
        assert (result.e_value, result.failed, result.proven) == (1.0, False, False)
        assert math.isinf(result.lower)
        assert result.reason == "3 paired steps, fewer than 5"

    def test_a_long_constant_difference_stays_finite(self) -> None:
        """200 identical differences: the t tail underflows, the statistic is kept as is, and
        the e-value is capped, not inf or NaN."""
        result = sequential_mean([1.0] * 200, [1.5] * 200)
        assert result.failed
        assert math.isfinite(result.e_value)

    def test_bad_options_name_themselves(self) -> None:
        """Negative tolerance, t_opt < 1 or unequal lengths are ValueErrors naming them."""
        with pytest.raises(ValueError, match="tolerance must be ≥ 0 and t_opt ≥ 1"):
            sequential_mean([1.0] * 6, [1.0] * 6, tolerance=-1.0)
        with pytest.raises(ValueError, match="tolerance must be ≥ 0 and t_opt ≥ 1"):
            sequential_mean([1.0] * 6, [1.0] * 6, t_opt=0)
        with pytest.raises(ValueError, match="differ in length: 6 and 5"):
            sequential_mean([1.0] * 6, [1.0] * 5)

    def test_constant_differences_stay_finite(self) -> None:
        """Identical differences (σ̂ = 0) give a finite e-value either way, never NaN."""
        up = sequential_mean([1.0] * 10, [2.0] * 10)
        down = sequential_mean([2.0] * 10, [1.0] * 10)
        assert up.failed
        assert math.isfinite(up.e_value)
        assert 0.0 <= down.e_value < 1.0


def direct_long_run_variance(d: FloatArray) -> tuple[float, float]:
    """(σ², ν) spelled out step by step with plain loops: demean; lag-1 autocorrelation;
    Kendall's bias (1 + 3ρ)/t added; shrunk towards 0.9 with 10 pseudo-steps; clipped to
    [0, 0.95]; AR(1) residuals; their own lag-1 autocorrelation r (clipped to ±0.97) gives the
    Andrews (1991) bandwidth S = 1.1447·(4r²t/((1 − r)²(1 + r)²))^(1/3); Bartlett weights
    1 − j/S; recoloured by 1/(1 − ρ)²; never below the sample variance; ν = t·s²/σ² − 1 ≥ 1."""
    t = d.size
    u = [x - sum(d) / t for x in d]
    g0 = sum(x * x for x in u)
    rho = sum(u[k] * u[k - 1] for k in range(1, t)) / g0
    rho = min(max((t * (rho + (1 + 3 * rho) / t) + 10 * 0.9) / (t + 10), 0.0), 0.95)
    e = [u[k] - rho * u[k - 1] for k in range(1, t)]
    n = len(e)
    r = sum(e[k] * e[k - 1] for k in range(1, n)) / sum(x * x for x in e)
    r = min(max(r, -0.97), 0.97)
    band = 1.1447 * (4 * r * r * n / ((1 - r) ** 2 * (1 + r) ** 2)) ** (1 / 3)
    hac = sum(x * x for x in e) / n
    for j in range(1, n):
        if j < band:
            hac += 2 * (1 - j / band) * sum(e[k] * e[k - j] for k in range(j, n)) / n
    s2 = g0 / (t - 1)
    sigma2 = max(s2, hac / (1 - rho) ** 2)
    return sigma2, max(1.0, t * s2 / sigma2 - 1)


class TestLongRunVariance:
    """The AR(1)-prewhitened Newey–West long-run variance (Andrews & Monahan 1992)."""

    @pytest.mark.parametrize(("rho", "t"), [(0.0, 12), (0.5, 40), (0.8, 150), (-0.4, 60)])
    def test_it_matches_the_direct_computation(self, rho: float, t: int) -> None:
        """The vectorised estimator equals the step-by-step definition, row by row."""
        rng = np.random.default_rng(int(10 * rho) + t)
        rows = np.empty((3, t))
        for i in range(3):
            x = rng.normal(0.0, 1.0, t)
            for k in range(1, t):
                x[k] += rho * x[k - 1]
            rows[i] = x
        sigma2, nu = long_run_variance(rows)
        for i in range(3):
            want = direct_long_run_variance(rows[i])
            assert (sigma2[i], nu[i]) == pytest.approx(want, rel=1e-10)

    @pytest.mark.parametrize("rho", [0.3, 0.6])
    def test_ar1_long_run_variance_is_sigma2_over_one_minus_rho_squared(self, rho: float) -> None:
        """On long AR(1) series with innovation sd σ the estimate averages σ²/(1 − ρ)², the
        spectral density at 0 times 2π (Andrews 1991, §6), within 4 %."""
        rng = np.random.default_rng(17)
        shocks = rng.normal(0.0, 2.0, (300, 4000))
        x = np.empty_like(shocks)
        x[:, 0] = shocks[:, 0] / math.sqrt(1 - rho * rho)
        for k in range(1, x.shape[1]):
            x[:, k] = rho * x[:, k - 1] + shocks[:, k]
        sigma2, _ = long_run_variance(x)
        assert float(sigma2.mean()) == pytest.approx(4.0 / (1 - rho) ** 2, rel=0.04)

    def test_iid_data_keep_about_the_sample_variance(self) -> None:
        """On long i.i.d. series σ̂² is the sample variance to within a few per cent, ν ≈ t."""
        d = np.random.default_rng(18).normal(0.0, 3.0, (200, 2000))
        sigma2, nu = long_run_variance(d)
        s2 = d.var(axis=1, ddof=1)
        assert np.all(sigma2 >= s2 * (1 - 1e-12))
        assert float(np.median(sigma2 / s2)) == pytest.approx(1.0, abs=0.05)
        assert float(np.median(nu)) > 1800
