"""sequential_mean's anytime validity: over 2,000 seeded A/A streams the share that *ever*
fails stays at or below α plus two binomial standard errors — on i.i.d. normal, Student-t and
log-normal gauges and on AR(1) gauges at ρ 0.3/0.6/0.8, where the plain sample variance does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from scipy import special, stats

from judges.sequential.mean import long_run_variance, sequential_mean

FloatArray = npt.NDArray[np.float64]

ALPHA = 0.05
THRESHOLD = 1.0 / ALPHA
N_STREAMS = 2_000
LOOKS = 60
# α plus two binomial standard errors at 2,000 streams: ≈ 0.0597.
MARGIN = ALPHA + 2.0 * math.sqrt(ALPHA * (1.0 - ALPHA) / N_STREAMS)


def rho2_for(alpha: float, t_opt: int) -> float:
    """Waudby-Smith et al.'s ρ² tuned for t_opt (the module's default tuning)."""
    log_a = math.log(1.0 / alpha)
    return (2.0 * log_a + math.log(2.0 * log_a + 1.0)) / t_opt


def first_failure(judge: Callable[[int], bool], looks: int = LOOKS) -> int | None:
    """The first look (1-based) at which ``judge(look)`` fails, if any."""
    for k in range(1, looks + 1):
        if judge(k):
            return k
    return None


def mean_reference_log_e(
    d: FloatArray, *, dependence: bool = True, tolerance: float = 0.0, t_opt: int = 120
) -> FloatArray:
    """The mean judge's one-sided log e-value after every look of every row of ``d``, vectorised
    over the rows; ``dependence=False`` is the judge before it accounted for serial dependence
    (the sample variance and t − 1 degrees of freedom)."""
    streams, looks = d.shape
    out = np.zeros((streams, looks))
    rho2 = rho2_for(ALPHA, t_opt)
    for k in range(5, looks + 1):
        x = d[:, :k]
        if dependence:
            var, df = long_run_variance(x)
        else:
            var, df = x.var(axis=1, ddof=1), np.full(streams, k - 1.0)
        stat = (x - tolerance).sum(axis=1) / (np.sqrt(np.maximum(var, 1e-300)) * math.sqrt(k))
        # special.stdtr/ndtri: scipy.stats' wrappers cost seconds at this size
        z = np.copysign(-special.ndtri(special.stdtr(df, -np.abs(stat))), stat)
        v = 1 + rho2 * k
        zz = z * math.sqrt(rho2 * k / v)
        out[:, k - 1] = math.log(2) - 0.5 * math.log(v) + 0.5 * zz * zz + special.log_ndtr(zz)
    return out


def ar1(rng: np.random.Generator, shape: tuple[int, int], rho: float, sd: float) -> FloatArray:
    """Stationary AR(1) rows with coefficient ``rho`` and marginal sd ``sd``."""
    shocks = rng.normal(0.0, sd * math.sqrt(1 - rho * rho), shape)
    x = np.empty(shape)
    x[:, 0] = rng.normal(0.0, sd, shape[0])
    for k in range(1, shape[1]):
        x[:, k] = rho * x[:, k - 1] + shocks[:, k]
    return x


class TestMeanAnytimeValidity:
    """A/A gauges: the chance of ever failing stays ≤ α."""

    @pytest.mark.parametrize(
        ("name", "draw"),
        [
            ("gaussian", lambda rng, n: rng.normal(0.5, 0.05, n)),
            ("lognormal latencies", lambda rng, n: rng.lognormal(math.log(0.2), 0.8, n)),
            ("student-t 3 df", lambda rng, n: rng.standard_t(3, n)),
            ("student-t 2 df", lambda rng, n: rng.standard_t(2, n)),
        ],
    )
    def test_aa_streams_rarely_fail(
        self, name: str, draw: Callable[[np.random.Generator, int], FloatArray]
    ) -> None:
        """2,000 A/A streams of 60 looks: ≤ α (+2 SE) ever fail in the judge itself; a naive
        repeated one-sided t-test at level α on the same streams fails far more often."""
        rng = np.random.default_rng(77)
        baseline = draw(rng, N_STREAMS * LOOKS).reshape(N_STREAMS, LOOKS)
        canary = draw(rng, N_STREAMS * LOOKS).reshape(N_STREAMS, LOOKS)
        d = canary - baseline
        log_e = mean_reference_log_e(d)
        # The vectorised reference is the judge (spot-checked here, every look of 10 streams);
        # the judge itself replays every stream the reference brings within e^0.5 of the line.
        for s in range(4):
            for k in range(5, LOOKS + 1, 5):
                judged = sequential_mean(baseline[s, :k], canary[s, :k])
                assert math.log(judged.e_value) == pytest.approx(log_e[s, k - 1], abs=1e-7)
        near = np.flatnonzero((log_e >= math.log(THRESHOLD) - 0.5).any(axis=1))
        failed = sum(
            first_failure(lambda k, s=s: sequential_mean(baseline[s, :k], canary[s, :k]).failed)
            is not None
            for s in near
        )
        assert failed / N_STREAMS <= MARGIN, name
        assert (log_e >= math.log(THRESHOLD)).any(axis=1).sum() == failed, name
        t = np.arange(1, LOOKS + 1)
        s = np.cumsum(d, axis=1)
        sd = np.sqrt((np.cumsum(d * d, axis=1) - s * s / t) / np.maximum(t - 1, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            naive = (s / (sd * np.sqrt(t)))[:, 4:] >= stats.t.isf(ALPHA, t[4:] - 1)
        assert naive.any(axis=1).mean() > MARGIN, name

    def test_the_reference_is_the_judge(self) -> None:
        """The vectorised reference used for long horizons equals the judge look by look."""
        rng = np.random.default_rng(5)
        d = rng.normal(0, 1, (4, 80))
        log_e = mean_reference_log_e(d)
        for s in range(4):
            for k in (5, 6, 17, 80):
                judged = sequential_mean(np.zeros(k), d[s, :k])
                assert math.log(judged.e_value) == pytest.approx(
                    log_e[s, k - 1], rel=1e-9, abs=1e-9
                )

    def test_long_gaussian_streams_stay_valid(self) -> None:
        """2,000 Gaussian A/A streams of 240 looks: ≤ α ever fail with the long-run variance and
        its effective-sample Student-t mapping."""
        d = np.random.default_rng(6).normal(0, 1, (N_STREAMS, 240))
        crossed = (mean_reference_log_e(d) >= math.log(THRESHOLD)).any(axis=1).mean()
        assert crossed <= ALPHA, crossed

    @pytest.mark.parametrize("rho", [0.3, 0.6, 0.8])
    def test_autocorrelated_aa_gauges_rarely_fail(self, rho: float) -> None:
        """2,000 A/A streams of 120 looks, each arm's noise AR(1) with coefficient ρ (20 ms sd),
        tolerance 1 ms: ≤ α (+2 SE) ever fail; the sample-variance judge fails far more often
        from ρ = 0.6 on (the issue measured 20 % and 39 % at ρ = 0.6 and 0.8)."""
        rng = np.random.default_rng(int(100 * rho))
        shape = (N_STREAMS, 120)
        d = ar1(rng, shape, rho, 0.020) - ar1(rng, shape, rho, 0.020)
        line = math.log(THRESHOLD)
        log_e = mean_reference_log_e(d, tolerance=0.001)
        for s in range(3):  # the reference is the judge
            for k in (5, 30, 120):
                judged = sequential_mean(np.zeros(k), d[s, :k], tolerance=0.001)
                assert math.log(judged.e_value) == pytest.approx(log_e[s, k - 1], abs=1e-7)
        assert (log_e >= line).any(axis=1).mean() <= MARGIN, rho
        if rho >= 0.6:
            naive = mean_reference_log_e(d, dependence=False, tolerance=0.001)
            assert (naive >= line).any(axis=1).mean() > 2 * MARGIN, rho

    def test_a_shift_under_dependence_is_caught(self) -> None:
        """+30 ms from step 10 under AR(1) ρ = 0.6, 20 ms noise: most of 400 streams of 120 looks
        fail (the bench's target is 90 %)."""
        rng = np.random.default_rng(31)
        shape = (400, 120)
        d = ar1(rng, shape, 0.6, 0.020) - ar1(rng, shape, 0.6, 0.020)
        d[:, 10:] += 0.030
        log_e = mean_reference_log_e(d, tolerance=0.001)
        assert (log_e >= math.log(THRESHOLD)).any(axis=1).mean() >= 0.85
