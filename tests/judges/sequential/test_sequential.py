"""judges.sequential: closed-form cross-checks, anytime-valid A/A simulations, properties.

Reference values are recomputed here from their definitions, independently of the module's
algebra: the binomial likelihood ratio of Lindon & Malek (NeurIPS 2022) from
``scipy.stats.binom.logpmf``, the grid-mixture e-value, its confidence sequence and the
non-inferiority e-value by brute force over the documented grid (r = 100^(i/200), alternatives
r ≤ 50), and the normal-mixture e-value of Howard et al. (2021) by ``scipy.integrate.quad`` over
its half-normal mixing density, with the Student-t → normal score of Jennison & Turnbull's
significance-level approach done through ``scipy.stats.t``/``norm``.

``savvi`` (Lindon's reference package) was tried as a further oracle and left out: 0.3.1 installs
but does not import without matplotlib (an undeclared dependency of ``savvi.utils``), pulls in
cvxpy, and implements a different mixture (a conjugate Dirichlet/Beta prior on θ with one fixed
ρ), so its e-values are not comparable number for number with the grid mixture over r.

The A/A simulations check the anytime-valid guarantee: over 2,000 seeded streams of 60 looks the
share that *ever* fails stays at or below α plus two binomial standard errors, a check that a
naive repeated z-test (shown in the same tests) fails by a wide margin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special, stats

from judges.labels import Direction
from judges.sequential import count as seq
from judges.sequential.count import sequential_count
from judges.sequential.ebonferroni import e_bonferroni_threshold
from judges.sequential.mean import sequential_mean

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


# -- references ---------------------------------------------------------------------------------
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


def t_to_normal_sum(s: float, sigma: float, t: int) -> float:
    """The drift sum whose normal score has the Student-t (t − 1 df) tail of S/(σ√t)."""
    stat = s / (sigma * math.sqrt(t))
    z = (
        stats.norm.isf(stats.t.sf(stat, t - 1))
        if stat >= 0
        else stats.norm.ppf(stats.t.cdf(stat, t - 1))
    )
    return float(z) * sigma * math.sqrt(t)


def rho2_for(alpha: float, t_opt: int) -> float:
    """Waudby-Smith et al.'s ρ² tuned for t_opt (the module's default tuning)."""
    log_a = math.log(1.0 / alpha)
    return (2.0 * log_a + math.log(2.0 * log_a + 1.0)) / t_opt


# -- stream generators --------------------------------------------------------------------------
@dataclass(frozen=True)
class Traffic:
    """An A/A count stream per step: requests ~ Poisson, errors ~ Binomial(requests, p)."""

    name: str
    rps_baseline: float
    rps_canary: float
    error_rate: float
    step_s: float = 60.0

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[FloatArray, ...]:
        """(baseline events, baseline exposure, canary events, canary exposure), each ``shape``."""
        na = rng.poisson(self.rps_baseline * self.step_s, shape).astype(np.float64)
        nb = rng.poisson(self.rps_canary * self.step_s, shape).astype(np.float64)
        ea = rng.binomial(na.astype(np.int64), self.error_rate).astype(np.float64)
        eb = rng.binomial(nb.astype(np.int64), self.error_rate).astype(np.float64)
        return ea, na, eb, nb


AA_TRAFFIC = [
    Traffic("0.2 req/s per arm, 5 % errors", 0.2, 0.2, 0.05),
    Traffic("5 req/s per arm, 1 % errors", 5.0, 5.0, 0.01),
    Traffic("50 req/s per arm, 1 % errors", 50.0, 50.0, 0.01),
    Traffic("canary at 5 % of 200 req/s, 1 % errors", 190.0, 10.0, 0.01),
    Traffic("near-zero-error baseline: 5 req/s, 0.01 % errors", 5.0, 5.0, 1e-4),
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


# -- sequential_count ---------------------------------------------------------------------------
def _stream(
    seed: int, steps: int = 40, ratio: float = 1.0, lam: float = 4.0
) -> tuple[FloatArray, ...]:
    rng = np.random.default_rng(seed)
    na = rng.poisson(3000, steps).astype(np.float64)
    nb = rng.poisson(1000, steps).astype(np.float64)
    ea = rng.poisson(lam * na / 1000).astype(np.float64)
    eb = rng.poisson(lam * ratio * nb / 1000).astype(np.float64)
    return ea, na, eb, nb


class TestCountClosedForms:
    """sequential_count against the binomial likelihood ratio recomputed from scipy."""

    @pytest.mark.parametrize("i", [1, 17, 48, 170, -30])
    def test_log_likelihood_ratio_is_the_binomial_pmf_ratio(self, i: int) -> None:
        """log Mₜ(r) at one grid r equals Σ log Bin(eB; T, θ(r)) − log Bin(eB; T, ρ)."""
        ea, na, eb, nb = _stream(1, ratio=1.7)
        log_m = seq._log_lr(ea, eb, nb / (na + nb))
        assert log_m[200 + i] == pytest.approx(binom_log_m(ea, na, eb, nb, i * H), rel=1e-10)

    @pytest.mark.parametrize(("ratio", "seed"), [(1.0, 2), (1.5, 3), (3.0, 4), (0.6, 5)])
    def test_e_value_is_the_mean_over_the_grid_alternatives(self, ratio: float, seed: int) -> None:
        """Untempered, the e-value is the plain mean of Mₜ(r) over r = 100^(i/200), i = 1..170."""
        ea, na, eb, nb = _stream(seed, ratio=ratio)
        result = sequential_count(ea, na, eb, nb, temper=False)
        brute = log_mean_exp(binom_log_m_grid(ea, na, eb, nb, ALT))
        assert math.log(result.e_value) == pytest.approx(brute, rel=1e-9, abs=1e-9)
        assert result.failed is (result.e_value >= THRESHOLD)

    def test_decrease_mixes_the_alternatives_below_one(self) -> None:
        """direction=decrease averages Mₜ(r) over r = 100^(−i/200), i = 1..170."""
        ea, na, eb, nb = _stream(6, ratio=0.5)
        result = sequential_count(ea, na, eb, nb, temper=False, direction=Direction.DECREASE)
        brute = log_mean_exp(binom_log_m_grid(ea, na, eb, nb, -ALT))
        assert math.log(result.e_value) == pytest.approx(brute, rel=1e-9)

    def test_either_takes_the_larger_side_at_twice_the_threshold(self) -> None:
        """direction=either: max of the one-sided e-values, failing at 2m/α (Bonferroni)."""
        ea, na, eb, nb = _stream(7, ratio=2.0)
        up = sequential_count(ea, na, eb, nb, temper=False)
        down = sequential_count(ea, na, eb, nb, temper=False, direction=Direction.DECREASE)
        both = sequential_count(ea, na, eb, nb, temper=False, direction=Direction.EITHER)
        assert both.e_value == pytest.approx(max(up.e_value, down.e_value), rel=1e-12)
        assert both.threshold == 2 * THRESHOLD

    @pytest.mark.parametrize(("ratio", "seed"), [(1.4, 8), (1.0, 9), (0.8, 10)])
    def test_bounds_invert_the_one_sided_tests(self, ratio: float, seed: int) -> None:
        """lower is the smallest grid r₀ whose mixture of Mₜ(r)/Mₜ(r₀) over the 170 grid r above
        r₀ stays below 1/α; upper the largest whose mixture over the 170 below does."""
        ea, na, eb, nb = _stream(seed, ratio=ratio, lam=2.0)
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
            ea, na, eb, nb = _stream(100 + seed, steps=60, lam=30.0)
            result = sequential_count(ea, na, eb, nb, temper=False, tolerance=tolerance)
            i0 = math.floor(math.log(tolerance) / H + 1e-9)
            below = np.arange(i0 - 170, i0)
            log_m = binom_log_m_grid(ea, na, eb, nb, np.append(below, i0))
            log_e = log_mean_exp(log_m[:-1] - log_m[-1])
            if abs(log_e - math.log(THRESHOLD)) > 1e-6:
                assert result.proven is (log_e >= math.log(THRESHOLD)), seed

    def test_tempering_divides_the_log_likelihood_by_the_pearson_dispersion(self) -> None:
        """Overdispersed counts: φ = Pearson χ²/df of the canary's share at the estimate, and the
        e-value is the mean of Mₜ(r)^(1/φ)."""
        rng = np.random.default_rng(9)
        rate = rng.gamma(0.5, 8.0, size=(2, 50))  # bursty: a gamma rate per step and arm
        ea, eb = (rng.poisson(rate[j]).astype(np.float64) for j in range(2))
        na = nb = np.full(50, 1000.0)
        result = sequential_count(ea, na, eb, nb)
        keep = ea + eb > 0
        rho = 0.5
        r = result.estimate
        theta = rho * r / (1 - rho + rho * r)
        total = (ea + eb)[keep]
        chi2 = np.sum((eb[keep] - total * theta) ** 2 / (total * theta * (1 - theta)))
        phi = chi2 / (keep.sum() - 1)
        assert phi > 2.0
        assert result.dispersion == pytest.approx(phi, rel=1e-12)
        brute = log_mean_exp(binom_log_m_grid(ea, na, eb, nb, ALT) / phi)
        assert math.log(result.e_value) == pytest.approx(brute, rel=1e-9, abs=1e-9)

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


class TestCountAnytimeValidity:
    """A/A streams: the chance of ever failing over 60 looks stays ≤ α."""

    @pytest.mark.parametrize("traffic", AA_TRAFFIC, ids=lambda t: t.name)
    def test_aa_streams_rarely_fail(self, traffic: Traffic) -> None:
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


counts = st.lists(
    st.tuples(st.integers(0, 30), st.integers(1, 500), st.integers(0, 30), st.integers(1, 500)),
    min_size=1,
    max_size=40,
)


def _columns(rows: list[tuple[int, int, int, int]]) -> tuple[FloatArray, ...]:
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]


class TestCountProperties:
    """Properties that must hold for any data."""

    @settings(max_examples=200, deadline=None)
    @given(rows=counts, metrics=st.integers(1, 4), tolerance=st.sampled_from([1.2, 1.5, 2.0]))
    def test_verdicts_agree_with_the_e_value_and_the_bounds(
        self, rows: list[tuple[int, int, int, int]], metrics: int, tolerance: float
    ) -> None:
        """With ≥ 5 informative steps: failed ⇔ e ≥ m/α ⇔ lower > 1; proven ⇒ upper < tolerance.
        Fewer decide nothing. The threshold is the e-Bonferroni one."""
        result = sequential_count(*_columns(rows), metrics=metrics, tolerance=tolerance)
        assert result.threshold == metrics / ALPHA
        if result.steps < 5:
            assert not result.failed
            assert not result.proven
            return
        assert result.failed is (result.e_value >= result.threshold)
        assert result.failed is (result.lower > 1.0)
        if result.proven:
            assert result.upper < tolerance
        assert result.lower <= result.estimate <= result.upper

    def test_fewer_than_min_steps_decide_nothing(self) -> None:
        """A burst in the canary's first steps is reported (e, bounds) but decides nothing until
        five informative steps can estimate the dispersion; min_steps=1 judges at once."""
        ea, na = np.array([4.0, 6.0, 5.0]), np.full(3, 3000.0)
        eb, nb = np.array([40.0, 5.0, 4.0]), np.full(3, 3000.0)
        gated = sequential_count(ea, na, eb, nb)
        assert gated.e_value >= THRESHOLD
        assert not gated.failed
        assert gated.reason.startswith("undecided: 3 informative steps, fewer than 5; ")
        assert sequential_count(ea, na, eb, nb, min_steps=1).failed

    @settings(max_examples=150, deadline=None)
    @given(rows=counts, step=st.integers(0, 39), extra=st.integers(1, 20))
    def test_more_canary_events_never_lower_the_untempered_e_value(
        self, rows: list[tuple[int, int, int, int]], step: int, extra: int
    ) -> None:
        """Each canary event multiplies Mₜ(r) by θ/ρ > 1 for every r > 1."""
        ea, na, eb, nb = _columns(rows)
        before = sequential_count(ea, na, eb, nb, temper=False).e_value
        eb = eb.copy()
        eb[step % eb.size] += extra
        assert sequential_count(ea, na, eb, nb, temper=False).e_value >= before * (1 - 1e-12)

    @settings(max_examples=150, deadline=None)
    @given(rows=counts)
    def test_tempering_never_lifts_the_e_value_above_one_or_the_untempered(
        self, rows: list[tuple[int, int, int, int]]
    ) -> None:
        """mean Mₜ(r)^(1/φ) is convex in 1/φ, so it lies below max(1, mean Mₜ(r)) — the bound that
        keeps the tempered judge anytime-valid whatever φ the data produce."""
        ea, na, eb, nb = _columns(rows)
        tempered = sequential_count(ea, na, eb, nb).e_value
        plain = sequential_count(ea, na, eb, nb, temper=False).e_value
        assert tempered <= max(1.0, plain) * (1 + 1e-12)

    @settings(max_examples=150, deadline=None)
    @given(rows=counts, temper=st.booleans())
    def test_swapping_the_arms_mirrors_increase_and_decrease(
        self, rows: list[tuple[int, int, int, int]], temper: bool
    ) -> None:
        """Canary ↔ baseline turns r into 1/r: the increase test of one is the decrease test of
        the other, with the estimate and the CS inverted."""
        ea, na, eb, nb = _columns(rows)
        up = sequential_count(ea, na, eb, nb, temper=temper)
        down = sequential_count(eb, nb, ea, na, temper=temper, direction=Direction.DECREASE)
        assert down.e_value == pytest.approx(up.e_value, rel=1e-9, abs=1e-300)
        assert down.failed is up.failed
        assert down.proven is up.proven
        assert down.dispersion == pytest.approx(up.dispersion, rel=1e-9)
        if up.steps:
            assert down.estimate == pytest.approx(1.0 / up.estimate, rel=1e-9)
            assert down.lower == pytest.approx(1.0 / up.upper, rel=1e-9)
            assert down.upper == pytest.approx(1.0 / up.lower, rel=1e-9)

    @settings(max_examples=100, deadline=None)
    @given(rows=counts, holes=st.lists(st.integers(0, 60), max_size=8))
    def test_missing_steps_are_skipped(
        self, rows: list[tuple[int, int, int, int]], holes: list[int]
    ) -> None:
        """NaN steps (either side, events or exposure) change nothing."""
        ea, na, eb, nb = _columns(rows)
        plain = sequential_count(ea, na, eb, nb)
        cols = [list(c) for c in (ea, na, eb, nb)]
        for n, at in enumerate(holes):
            pos = at % (len(cols[0]) + 1)
            for j, col in enumerate(cols):
                col.insert(pos, math.nan if j == n % 4 else 5.0)
        holey = sequential_count(*(np.asarray(c) for c in cols))
        assert holey == plain

    def test_long_aa_streams_are_promoted_early(self) -> None:
        """A/A at 200 req/s per arm and 1 % errors: non-inferiority within tolerance 1.2 is
        proven within the hour in (nearly) every stream, mostly well before it; none fails."""
        rng = np.random.default_rng(12)
        ea, na, eb, nb = Traffic("200 req/s", 200.0, 200.0, 0.01).draw(rng, (40, LOOKS))
        first = []
        for s in range(40):
            args = (ea[s], na[s], eb[s], nb[s])
            results = {k: sequential_count(*(x[:k] for x in args)) for k in range(10, 61, 10)}
            assert not any(r.failed for r in results.values())
            proven = [k for k, r in results.items() if r.proven]
            first.append(proven[0] if proven else math.inf)
            for k in proven:
                assert results[k].upper < 1.2
                assert results[k].reason.startswith("non-inferior: canary/baseline ≤ ")
        assert np.mean(np.isfinite(first)) >= 0.95
        assert np.median(first) <= 30

    @pytest.mark.parametrize(
        ("tolerance", "direction", "proven"),
        [
            (0.005, Direction.INCREASE, False),  # r < 0.005: below the grid, nothing to mix
            (0.005, Direction.DECREASE, False),
            (500.0, Direction.INCREASE, True),  # r < 500, tested as r < 100 (the grid's end)
            (500.0, Direction.DECREASE, True),
        ],
    )
    def test_tolerances_beyond_the_grid_stay_conservative(
        self, tolerance: float, direction: Direction, proven: bool
    ) -> None:
        """A/A data never "prove" a ratio below 1/100 (an index below the grid once wrapped
        around to its far end and did); a huge tolerance is tested at the grid's edge."""
        ea, na, eb, nb = _stream(14, steps=30, lam=20.0)
        result = sequential_count(ea, na, eb, nb, tolerance=tolerance, direction=direction)
        assert result.proven is proven

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"tolerance": 0.0}, "tolerance must be > 0"),
            ({"alpha": 1.5}, "alpha must lie in"),
            ({"metrics": 0}, "metrics must be"),
        ],
    )
    def test_bad_options_name_themselves(self, kwargs: dict[str, float], match: str) -> None:
        """Invalid options are ValueErrors naming the option."""
        ea, na, eb, nb = _stream(15, steps=5)
        with pytest.raises(ValueError, match=match):
            sequential_count(ea, na, eb, nb, **kwargs)

    def test_arrays_of_different_lengths_are_refused(self) -> None:
        """Events and exposure must line up step by step."""
        with pytest.raises(ValueError, match=r"differ in length: \[2, 3\]"):
            sequential_count([1, 2], [10, 10], [1, 2, 3], [10, 10, 10])

    def test_a_regression_is_never_proven_non_inferior(self) -> None:
        """A 3× canary fails and is not proven, whatever the tolerance below 3."""
        ea, na, eb, nb = _stream(13, steps=30, ratio=3.0, lam=5.0)
        for tolerance in (1.2, 2.0):
            result = sequential_count(ea, na, eb, nb, tolerance=tolerance)
            assert result.failed
            assert not result.proven
            assert result.lower > 1.0
            assert "regression" in result.reason


# -- sequential_mean ----------------------------------------------------------------------------
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
        Student-t to the normal scale; quad agrees to 1e-7."""
        rng = np.random.default_rng(int(100 * shift) + t)
        baseline = rng.normal(10.0, 1.0, t)
        canary = rng.normal(10.0 + shift, 1.0, t)
        result = sequential_mean(baseline, canary, tolerance=tolerance)
        d = canary - baseline
        sigma = float(np.std(d, ddof=1))
        s = t_to_normal_sum(float(np.sum(d - tolerance)), sigma, t)
        expected = quad_mean_e(s, sigma, t, rho2_for(ALPHA, 60))
        assert result.e_value == pytest.approx(expected, rel=1e-7)

    @pytest.mark.parametrize(("t", "metrics"), [(5, 1), (12, 1), (60, 2), (500, 3)])
    def test_bounds_are_where_the_one_sided_tests_flip(self, t: int, metrics: int) -> None:
        """lower is the tolerance δ at which the regression test's e-value (by quad, above)
        just reaches m/α, upper the mirror; both at d̄ ∓ the same half-width."""
        rng = np.random.default_rng(t)
        baseline, canary = rng.normal(0, 2, t), rng.normal(0.5, 2, t)
        result = sequential_mean(baseline, canary, metrics=metrics)
        d = canary - baseline
        sigma, rho2 = float(np.std(d, ddof=1)), rho2_for(ALPHA, 60)

        def gap(delta: float) -> float:
            s = t_to_normal_sum(float(np.sum(d - delta)), sigma, t)
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
        solving the known-σ mixture E(z) = 1/α in closed form."""
        t = 20_000
        rng = np.random.default_rng(3)
        d = rng.normal(0, 1, t)
        result = sequential_mean(np.zeros(t), d)
        rho2 = rho2_for(ALPHA, 60)
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
        half = np.std(d, ddof=1) / math.sqrt(t) * score
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


def mean_reference_log_e(d: FloatArray, *, calibrated: bool = True, t_opt: int = 60) -> FloatArray:
    """The mean judge's one-sided log e-value after every look of every row of ``d``
    (vectorised; ``calibrated=False`` is the plain plug-in σ̂ without the Student-t mapping)."""
    t = np.arange(1, d.shape[1] + 1, dtype=np.float64)
    s = np.cumsum(d, axis=1)
    var = (np.cumsum(d * d, axis=1) - s * s / t) / np.maximum(t - 1, 1)
    sigma = np.sqrt(np.maximum(var, 1e-300))
    stat = s / (sigma * np.sqrt(t))
    if calibrated:  # special.stdtr/ndtri: scipy.stats' wrappers cost seconds at this size
        df = np.maximum(t - 1, 1)
        z = np.copysign(-special.ndtri(special.stdtr(df, -np.abs(stat))), stat)
    else:
        z = stat
    rho2 = rho2_for(ALPHA, t_opt)
    v = 1 + rho2 * t
    zz = z * np.sqrt(rho2 * t / v)
    log_e = math.log(2) - 0.5 * np.log(v) + 0.5 * zz * zz + special.log_ndtr(zz)
    return np.where(t >= 5, log_e, 0.0)


class TestMeanAnytimeValidity:
    """A/A gauges: the chance of ever failing stays ≤ α."""

    @pytest.mark.parametrize(
        ("name", "draw"),
        [
            ("gaussian", lambda rng, n: rng.normal(0.5, 0.05, n)),
            ("lognormal latencies", lambda rng, n: rng.lognormal(math.log(0.2), 0.8, n)),
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
        for s in range(10):
            for k in range(5, LOOKS + 1):
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
        """10,000 Gaussian A/A streams of 300 looks: ≤ α ever fail with the Student-t mapping;
        the plain plug-in σ̂ crosses more often than α (the small-sample t tails)."""
        rng = np.random.default_rng(6)
        d = rng.normal(0, 1, (10_000, 300))
        line = math.log(THRESHOLD)
        calibrated = (mean_reference_log_e(d) >= line).any(axis=1).mean()
        plug_in = (mean_reference_log_e(d, calibrated=False) >= line).any(axis=1).mean()
        assert calibrated <= ALPHA, calibrated
        assert plug_in > ALPHA, plug_in


class TestMeanProperties:
    """Properties of the mean judge for any data."""

    values = st.lists(
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=2, max_size=40
    )

    @settings(max_examples=150, deadline=None)
    @given(data=st.data(), metrics=st.integers(1, 3), tolerance=st.floats(0, 5))
    def test_failed_means_the_e_value_reached_the_threshold(
        self, data: st.DataObject, metrics: int, tolerance: float
    ) -> None:
        """failed ⇔ e ≥ m/α ⇔ lower ≥ tolerance; proven ⇔ upper < tolerance; e finite, ≥ 0."""
        base = data.draw(self.values)
        canary = data.draw(st.lists(st.floats(-1e3, 1e3), min_size=len(base), max_size=len(base)))
        result = sequential_mean(base, canary, metrics=metrics, tolerance=tolerance)
        assert result.threshold == metrics / ALPHA
        assert math.isfinite(result.e_value)
        assert result.e_value >= 0
        assert result.failed is (result.e_value >= result.threshold)
        if result.steps >= 5 and abs(math.log(result.e_value / result.threshold)) > 1e-6:
            assert result.failed is (result.lower >= tolerance)
            assert result.proven is (result.upper < tolerance)

    @settings(max_examples=150, deadline=None)
    @given(data=st.data(), shift=st.floats(0.01, 100))
    def test_a_worse_canary_never_lowers_the_e_value(
        self, data: st.DataObject, shift: float
    ) -> None:
        """Adding a constant to every canary value raises the drift sum, not σ̂."""
        base = data.draw(self.values)
        canary = data.draw(st.lists(st.floats(-1e3, 1e3), min_size=len(base), max_size=len(base)))
        assume(len(set(np.subtract(canary, base).tolist())) > 1)
        before = sequential_mean(base, canary).e_value
        after = sequential_mean(base, np.add(canary, shift)).e_value
        assert after >= before * (1 - 1e-9)

    @settings(max_examples=150, deadline=None)
    @given(data=st.data(), tolerance=st.floats(0, 5))
    def test_swapping_the_arms_mirrors_increase_and_decrease(
        self, data: st.DataObject, tolerance: float
    ) -> None:
        """Canary ↔ baseline negates d: increase of one is decrease of the other."""
        base = data.draw(self.values)
        canary = data.draw(st.lists(st.floats(-1e3, 1e3), min_size=len(base), max_size=len(base)))
        up = sequential_mean(base, canary, tolerance=tolerance)
        down = sequential_mean(canary, base, tolerance=tolerance, direction=Direction.DECREASE)
        assert down.e_value == pytest.approx(up.e_value, rel=1e-9, abs=1e-300)
        assert (down.failed, down.proven) == (up.failed, up.proven)
        assert down.lower == pytest.approx(-up.upper, rel=1e-9, abs=1e-12)

    def test_missing_steps_are_skipped(self) -> None:
        """A NaN on either side drops that step's pair."""
        rng = np.random.default_rng(8)
        base, canary = rng.normal(0, 1, 30), rng.normal(0.2, 1, 30)
        plain = sequential_mean(base, canary)
        holey_base = np.insert(base, [3, 10], [math.nan, 1.0])
        holey_canary = np.insert(canary, [3, 10], [2.0, math.nan])
        assert sequential_mean(holey_base, holey_canary) == plain

    def test_a_small_difference_is_proven_within_tolerance(self) -> None:
        """An A/A gauge (sd 3 a step) with tolerance 2 is proven non-inferior in 120 steps."""
        rng = np.random.default_rng(9)
        base, canary = rng.normal(50, 3, 120), rng.normal(50, 3, 120)
        result = sequential_mean(base, canary, tolerance=2.0)
        assert result.proven
        assert not result.failed
        assert result.upper < 2.0
        assert "non-inferior" in result.reason


# -- e-Bonferroni -------------------------------------------------------------------------------
class TestEBonferroni:
    """m sequential metrics share α: each fails at m/α."""

    @pytest.mark.parametrize(
        ("alpha", "m", "expected"), [(0.05, 1, 20.0), (0.05, 3, 60.0), (0.01, 2, 200.0)]
    )
    def test_threshold_is_m_over_alpha(self, alpha: float, m: int, expected: float) -> None:
        """e_bonferroni_threshold(α, m) = m/α, and the judges use it."""
        assert e_bonferroni_threshold(alpha, m) == pytest.approx(expected)
        ea, na, eb, nb = _stream(1)
        assert sequential_count(ea, na, eb, nb, alpha=alpha, metrics=m).threshold == pytest.approx(
            expected
        )
        assert sequential_mean([0.0] * 6, [1.0] * 6, alpha=alpha, metrics=m).threshold == (
            pytest.approx(expected)
        )

    @pytest.mark.parametrize(("alpha", "m"), [(0.0, 1), (1.0, 1), (-0.1, 1), (0.05, 0)])
    def test_bad_arguments_name_themselves(self, alpha: float, m: int) -> None:
        """α outside (0, 1) or m < 1 is a ValueError naming the argument."""
        with pytest.raises(ValueError, match=r"^(alpha|metrics) must"):
            e_bonferroni_threshold(alpha, m)
