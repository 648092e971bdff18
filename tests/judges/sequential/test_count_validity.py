"""sequential_count's anytime validity: over 2,000 seeded A/A streams the share that *ever*
fails stays at or below α plus two binomial standard errors — on Poisson traffic (60 looks),
where a naive repeated z-test fails by a wide margin, and on bursty traffic: sparse negative-
binomial counts over 240 looks and gamma-Poisson counts, through a vectorised reference of the
tempered e-process that is checked against the judge look by look.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from scipy import special, stats

from judges.sequential.count import sequential_count
from support.count_streams import CountTraffic

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


AA_TRAFFIC = [
    CountTraffic("0.2 req/s per arm, 5 % errors", 0.2, 0.2, 0.05),
    CountTraffic("5 req/s per arm, 1 % errors", 5.0, 5.0, 0.01),
    CountTraffic("50 req/s per arm, 1 % errors", 50.0, 50.0, 0.01),
    CountTraffic("canary at 5 % of 200 req/s, 1 % errors", 190.0, 10.0, 0.01),
    CountTraffic("near-zero-error baseline: 5 req/s, 0.01 % errors", 5.0, 5.0, 1e-4),
]


def reference_e_process(
    ea: FloatArray, na: FloatArray, eb: FloatArray, nb: FloatArray
) -> FloatArray:
    """The untempered one-sided e-process of every stream after every look, vectorised:
    log of the mean over the 170 alternatives of Mₜ(r), each term eB·log(θ/ρ) +
    eA·log((1−θ)/(1−ρ)) as defined (not the module's log1p form)."""
    streams, looks = ea.shape
    r = np.exp(ALT * H)[None, :]
    cum = np.zeros((streams, r.size))
    out = np.empty((streams, looks))
    for k in range(looks):
        a, b = ea[:, k : k + 1], eb[:, k : k + 1]
        informative = (na[:, k : k + 1] > 0) & (nb[:, k : k + 1] > 0) & (a + b > 0)
        rho = np.where(informative, nb[:, k : k + 1] / (na[:, k : k + 1] + nb[:, k : k + 1]), 0.5)
        theta = rho * r / (1.0 - rho + rho * r)
        step = b * np.log(theta / rho) + a * np.log((1.0 - theta) / (1.0 - rho))
        cum += np.where(informative, step, 0.0)
        out[:, k] = special.logsumexp(cum, axis=1) - math.log(r.size)
    return out


def naive_z_rejects(ea: FloatArray, na: FloatArray, eb: FloatArray, nb: FloatArray) -> FloatArray:
    """A wrong implementation: a one-sided z-test of the canary's share of events at level α,
    repeated at every look as if each were the only one."""
    rho = nb / (na + nb)
    total = ea + eb
    expected = np.cumsum(total * rho, axis=1)
    var = np.cumsum(total * rho * (1.0 - rho), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.cumsum(eb, axis=1) - expected) / np.sqrt(var)
    return np.asarray((np.nan_to_num(z) >= stats.norm.isf(ALPHA)).any(axis=1), dtype=np.float64)


def first_failure(judge: Callable[[int], bool], looks: int = LOOKS) -> int | None:
    """The first look (1-based) at which ``judge(look)`` fails, if any."""
    for k in range(1, looks + 1):
        if judge(k):
            return k
    return None


class TestCountAnytimeValidity:
    """A/A streams: the chance of ever failing over 60 looks stays ≤ α."""

    @pytest.mark.parametrize("traffic", AA_TRAFFIC, ids=lambda t: t.name)
    def test_aa_streams_rarely_fail(self, traffic: CountTraffic) -> None:
        """2,000 A/A streams of 60 looks: the share that ever fails is ≤ α (+2 SE), for the
        untempered e-process and for the judge itself; a naive repeated z-test is not."""
        rng = np.random.default_rng(2024)
        ea, na, eb, nb = traffic.draw(rng, (N_STREAMS, LOOKS))
        log_e = reference_e_process(ea, na, eb, nb)
        crossed = (log_e >= math.log(THRESHOLD)).any(axis=1)
        # The reference is the judge untempered (checked on a few streams, every look) ...
        for s in range(5):
            for k in (1, 7, 30, LOOKS):
                judged = sequential_count(ea[s, :k], na[s, :k], eb[s, :k], nb[s, :k], temper=False)
                assert math.log(judged.e_value) == pytest.approx(log_e[s, k - 1], abs=1e-9)
        # ... and tempering never lifts an e-value above max(1, untempered): the judge can
        # only fail on a stream where the reference crossed. Replay those looks through it.
        failed = 0
        for s in np.flatnonzero(crossed):
            args = (ea[s], na[s], eb[s], nb[s])
            if first_failure(lambda k, a=args: sequential_count(*(x[:k] for x in a)).failed):
                failed += 1
        assert crossed.mean() <= MARGIN
        assert failed / N_STREAMS <= MARGIN
        assert failed <= crossed.sum()
        assert naive_z_rejects(ea, na, eb, nb).mean() > MARGIN

    def test_zero_error_baseline_regression_is_caught(self) -> None:
        """The same check has power: a canary erring at 0.1 % over a zero-error baseline at
        5 req/s per arm fails in nearly every stream within the 60 looks."""
        rng = np.random.default_rng(11)
        na = rng.poisson(300, (400, LOOKS)).astype(np.float64)
        nb = rng.poisson(300, (400, LOOKS)).astype(np.float64)
        eb = rng.binomial(nb.astype(np.int64), 0.001).astype(np.float64)
        log_e = reference_e_process(np.zeros_like(eb), na, eb, nb)
        assert (log_e >= math.log(THRESHOLD)).any(axis=1).mean() > 0.95


def tempered_e_process(
    ea: FloatArray, na: FloatArray, eb: FloatArray, nb: FloatArray
) -> FloatArray:
    """The judge's tempered one-sided log e-value of every stream after every look, vectorised:
    the reference's log Mₜ(r) over the 170 alternatives divided by φ = (χ²_A + χ²_B + 4)/
    (df_A + df_B + 1) ≥ 1, each arm's Pearson χ² about its exposure-proportional mean taken from
    running sums (χ² = (N/E)·Σ e²/n − E, df = steps − 1; every step has exposure here)."""
    streams, looks = ea.shape
    r = np.exp(ALT * H)[None, :]
    cum = np.zeros((streams, r.size))
    out = np.empty((streams, looks))
    sums = {name: np.zeros(streams) for name in ("Ea", "Na", "Qa", "Eb", "Nb", "Qb")}
    for k in range(looks):
        a, b = ea[:, k : k + 1], eb[:, k : k + 1]
        informative = (a + b > 0) & (na[:, k : k + 1] > 0) & (nb[:, k : k + 1] > 0)
        rho = nb[:, k : k + 1] / (na[:, k : k + 1] + nb[:, k : k + 1])
        theta = rho * r / (1.0 - rho + rho * r)
        step = b * np.log(theta / rho) + a * np.log((1.0 - theta) / (1.0 - rho))
        cum += np.where(informative, step, 0.0)
        chi2, df = np.zeros(streams), np.zeros(streams)
        for arm, e, n in (("a", ea[:, k], na[:, k]), ("b", eb[:, k], nb[:, k])):
            sums["E" + arm] += e
            sums["N" + arm] += n
            sums["Q" + arm] += e * e / n
            big_e, big_n = sums["E" + arm], sums["N" + arm]
            with np.errstate(divide="ignore", invalid="ignore"):
                c = np.where(big_e > 0, big_n / big_e * sums["Q" + arm] - big_e, 0.0)
            live = (big_e > 0) & (k >= 1)
            chi2 += np.where(live, c, 0.0)
            df += np.where(live, k, 0)
        tempered = cum / np.maximum(1.0, (chi2 + 4.0) / (df + 1.0))[:, None]
        top = tempered.max(axis=1, keepdims=True)
        out[:, k] = (top + np.log(np.exp(tempered - top).mean(axis=1, keepdims=True)))[:, 0]
    return out


def negative_binomial(
    rng: np.random.Generator, shape: tuple[int, int], mean: float, gamma_shape: float
) -> tuple[FloatArray, ...]:
    """A/A counts at 50 req/s per arm whose rate is multiplied per step and arm by a
    Gamma(k, 1/k) draw: negative binomial, variance mean·(1 + mean/k)."""
    na = rng.poisson(3000, shape).astype(np.float64)
    nb = rng.poisson(3000, shape).astype(np.float64)
    ea, eb = (
        rng.poisson(mean / 3000.0 * n * rng.gamma(gamma_shape, 1.0 / gamma_shape, shape))
        for n in (na, nb)
    )
    return ea.astype(np.float64), na, eb.astype(np.float64), nb


class TestCountBurstyValidity:
    """Overdispersed A/A counts: the tempered judge keeps its false-rollback rate."""

    @pytest.mark.parametrize(
        ("name", "looks", "mean", "gamma_shape", "bound"),
        [
            # ≈ 0.2 errors per step and arm, variance 3× the mean (k = 0.1), 240 looks
            ("sparse negative binomial", 240, 0.2, 0.1, MARGIN),
            # gamma-Poisson k = 2 at 0.2 % errors: variance 4× the mean; the bench's bound
            ("gamma-Poisson k=2", 60, 6.0, 2.0, 0.10),
        ],
    )
    def test_bursty_aa_streams_rarely_fail(
        self, name: str, looks: int, mean: float, gamma_shape: float, bound: float
    ) -> None:
        """2,000 bursty A/A streams: the share whose tempered e-process ever reaches 1/α stays
        within the bound, while the untempered binomial one exceeds α + 2 SE."""
        rng = np.random.default_rng(2025)
        ea, na, eb, nb = negative_binomial(rng, (N_STREAMS, looks), mean, gamma_shape)
        log_e = tempered_e_process(ea, na, eb, nb)
        for s in range(3):  # the vectorised reference is the judge
            for k in (1, 2, looks // 2, looks):
                judged = sequential_count(ea[s, :k], na[s, :k], eb[s, :k], nb[s, :k])
                if judged.steps:
                    assert math.log(judged.e_value) == pytest.approx(log_e[s, k - 1], abs=1e-9)
        line = math.log(THRESHOLD)
        assert (log_e >= line).any(axis=1).mean() <= bound, name
        assert (reference_e_process(ea, na, eb, nb) >= line).any(axis=1).mean() > MARGIN, name
