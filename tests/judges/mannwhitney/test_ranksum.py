"""judges.mannwhitney against scipy, against R, and against a plain transcription of R's algorithm.

The reference below (``_r_w``, ``_r_root``) evaluates R's ``wilcox.test`` statistic W(d)
literally — ranks of the pooled (x − d, y) with their tie term, continuity correction
½·sign(dz) — applies R's endpoint rules at mumin and mumax, and finds the root by scanning W
between consecutive distinct pairwise differences. W is constant on those open steps, so the
first step on which W(d) − z_q ≤ 0 starts at the jump point uniroot's bracket shrinks onto.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from judges.mannwhitney.ranksum import MannWhitneyResult, mann_whitney, mann_whitney_batch
from support.r_reference import R_CASES, RCase

FloatArray = npt.NDArray[np.float64]

CONFIDENCES = st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999])


# --- a plain reference of R's algorithm (stats:::wilcox.test.default, two-sample branch) ------


def _r_w(x: FloatArray, y: FloatArray, d: float) -> float:
    """R's W(d): (Σranks(x − d) − n(n+1)/2 − nm/2 − ½·sign(dz)) / σ(d)."""
    n, m = x.size, y.size
    ranks = stats.rankdata(np.concatenate([x - d, y]))
    dz = ranks[:n].sum() - n * (n + 1) / 2 - n * m / 2
    _, ties = np.unique(ranks, return_counts=True)
    total = n + m
    sigma = math.sqrt(n * m / 12 * ((total + 1) - (ties**3 - ties).sum() / (total * (total - 1))))
    return float((dz - 0.5 * np.sign(dz)) / sigma)


def _r_root(x: FloatArray, y: FloatArray, zq: float) -> float:
    """R's ``root(zq)``: endpoint rules, then the jump point where W(d) − zq changes sign."""
    diffs = np.unique(np.subtract.outer(x, y))
    mumin, mumax = float(diffs[0]), float(diffs[-1])
    if _r_w(x, y, mumin) - zq <= 0:
        return mumin
    if _r_w(x, y, mumax) - zq >= 0:
        return mumax
    for lo, hi in zip(diffs[:-1].tolist(), diffs[1:].tolist(), strict=True):
        if _r_w(x, y, (lo + hi) / 2) - zq <= 0:
            return float(lo)
    return mumax


def _r_interval(x: FloatArray, y: FloatArray, confidence: float) -> tuple[float, float]:
    zq = float(special.ndtri(1 - (1 - confidence) / 2))
    return _r_root(x, y, zq), _r_root(x, y, -zq)


# --- generated data -----------------------------------------------------------------------------


@st.composite
def sample_pairs(
    draw: st.DrawFn, *, max_size: int = 80, exact_grid: bool = False, varied: bool = False
) -> tuple[FloatArray, FloatArray]:
    """Two samples on a grid: a small spread gives heavy ties, a large one nearly none.

    ``exact_grid`` keeps every value a multiple of a power of two, so that x − d and x_i − y_j
    are computed exactly (the reference evaluates W at midpoints between differences).
    ``varied`` rules out the degenerate case of both samples constant.
    """
    spread = draw(st.sampled_from([1, 2, 5, 20, 1000, 10**6]))
    step = (
        draw(st.sampled_from([1.0, 0.25, 2.0**-6]))
        if exact_grid
        else draw(st.sampled_from([1.0, 0.1, 0.001, 1.7]))
    )
    values = st.integers(-spread, spread)
    x = np.array(draw(st.lists(values, min_size=1, max_size=max_size)), dtype=np.float64)
    y = np.array(draw(st.lists(values, min_size=1, max_size=max_size)), dtype=np.float64)
    shift = draw(st.integers(-spread, spread))
    x, y = (x + shift) * step, y * step
    if varied and np.ptp(x) == 0 and np.ptp(y) == 0:
        y = np.append(y, y[0] + step)
    return x, y


def _sorted_diffs(x: FloatArray, y: FloatArray) -> FloatArray:
    return np.sort(np.subtract.outer(np.asarray(x, float), np.asarray(y, float)), axis=None)


class TestPValue:
    """The p-value is scipy's asymptotic Mann-Whitney p-value with continuity correction."""

    @settings(max_examples=300, deadline=None)
    @given(sample_pairs())
    def test_equals_scipy_asymptotic(self, pair: tuple[FloatArray, FloatArray]) -> None:
        """p-value and U equal scipy.stats.mannwhitneyu(method="asymptotic") to 1e-9."""
        x, y = pair
        expected = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True)
        result = mann_whitney(x, y)
        assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)
        assert result.u == expected.statistic

    @settings(deadline=None)
    @given(
        st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80),
        st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80),
    )
    def test_equals_scipy_on_unrounded_floats(self, x: list[float], y: list[float]) -> None:
        """The p-value equals scipy's also for arbitrary (mostly untied) floats."""
        expected = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True).pvalue
        assert mann_whitney(x, y).p_value == pytest.approx(expected, abs=1e-9)

    def test_clipped_to_one_at_the_centre(self) -> None:
        """U exactly nm/2 gives p = 1, not 2·Φ(½/σ) > 1."""
        result = mann_whitney([1.0, 4.0], [2.0, 3.0])
        assert result.u == 2.0
        assert result.p_value == 1.0


class TestIntervalAgainstRAlgorithm:
    """lower/upper equal a literal transcription of R's root finding on W(d)."""

    @settings(max_examples=200, deadline=None)
    @given(sample_pairs(max_size=25, exact_grid=True, varied=True), CONFIDENCES)
    def test_equals_reference(self, pair: tuple[FloatArray, FloatArray], confidence: float) -> None:
        """The interval ends equal the reference's jump points to 1e-9."""
        x, y = pair
        lower, upper = _r_interval(x, y, confidence)
        result = mann_whitney(x, y, confidence=confidence)
        assert result.lower == pytest.approx(lower, abs=1e-9)
        assert result.upper == pytest.approx(upper, abs=1e-9)

    def test_reference_clips_at_mumin(self) -> None:
        """When W(mumin) ≤ z_q already, R (and we) return mumin = min(x) − max(y)."""
        x, y = np.array([2.0, 3.0]), np.array([1.0, 1.5])
        assert _r_interval(x, y, 0.99)[0] == 0.5
        assert mann_whitney(x, y, confidence=0.99).lower == 0.5


class TestAgainstR:
    """Results equal R's wilcox.test(conf.int=TRUE, exact=FALSE, correct=TRUE) (r_reference.py)."""

    @pytest.mark.parametrize("case", R_CASES, ids=[c.id for c in R_CASES])
    def test_interval_within_uniroot_tolerance(self, case: RCase) -> None:
        """The interval is R's to within uniroot's tolerance 1e-4."""
        result = mann_whitney(case.x, case.y, confidence=case.conf)
        assert result.lower == pytest.approx(case.lower, abs=1e-4)
        assert result.upper == pytest.approx(case.upper, abs=1e-4)

    @pytest.mark.parametrize("case", R_CASES, ids=[c.id for c in R_CASES])
    def test_reference_matches_r(self, case: RCase) -> None:
        """The test module's transcription of R's algorithm reproduces R's interval (≤ 1e-4)."""
        lower, upper = _r_interval(np.array(case.x, float), np.array(case.y, float), case.conf)
        assert lower == pytest.approx(case.lower, abs=1e-4)
        assert upper == pytest.approx(case.upper, abs=1e-4)

    @pytest.mark.parametrize("case", R_CASES, ids=[c.id for c in R_CASES])
    def test_p_value(self, case: RCase) -> None:
        """The p-value equals R's closed-form normal approximation."""
        result = mann_whitney(case.x, case.y, confidence=case.conf)
        assert result.p_value == pytest.approx(case.p_value, abs=1e-12)

    @pytest.mark.parametrize("case", R_CASES, ids=[c.id for c in R_CASES])
    def test_estimate(self, case: RCase) -> None:
        """nm odd: R's estimate is the median difference; nm even: both lie on W's zero step.

        R solves W(d) = 0 without continuity correction. For odd nm the only root is the jump
        at the median difference, so R's answer is ours to 1e-4. For even nm W is 0 on the
        whole step between the two middle differences; R returns the point its solver lands on
        and we return the step's midpoint, the Hodges–Lehmann median.
        """
        result = mann_whitney(case.x, case.y, confidence=case.conf)
        diffs = _sorted_diffs(np.array(case.x), np.array(case.y))
        pairs = diffs.size
        if pairs % 2:
            assert result.estimate == pytest.approx(case.estimate, abs=1e-4)
        else:
            lo, hi = diffs[pairs // 2 - 1], diffs[pairs // 2]
            assert lo - 1e-4 <= case.estimate <= hi + 1e-4
            assert result.estimate == pytest.approx((lo + hi) / 2, abs=1e-12)


class TestDegenerate:
    """Degenerate samples give an outcome with a reason, never an exception or noise."""

    @pytest.mark.parametrize(("x", "y"), [([], [1.0, 2.0]), ([1.0], []), ([], [])])
    def test_empty_side_is_nan_with_reason(self, x: list[float], y: list[float]) -> None:
        """An empty side gives NaN for every statistic and reason "no data"."""
        result = mann_whitney(x, y)
        fields = (result.u, result.z, result.p_value, result.lower, result.upper, result.estimate)
        assert all(math.isnan(v) for v in fields)
        assert result.reason == "no data"

    @pytest.mark.parametrize(("cx", "cy"), [(2.0, 1.0), (1.0, 3.5), (4.0, 4.0)])
    def test_both_constant_gives_the_single_difference(self, cx: float, cy: float) -> None:
        """Both sides constant: interval [c, c] and estimate c = canary − baseline, reason set."""
        result = mann_whitney([cx] * 5, [cy] * 3)
        c = cx - cy
        assert (result.lower, result.upper, result.estimate) == (c, c, c)
        assert "constant" in result.reason

    def test_regular_result_has_no_reason(self) -> None:
        """A regular comparison leaves the reason empty."""
        assert mann_whitney([1.0, 2.0, 3.0], [2.0, 2.5]).reason == ""

    @pytest.mark.parametrize("bad", [[1.0, float("nan")], [float("inf"), 1.0]])
    def test_non_finite_values_are_refused(self, bad: list[float]) -> None:
        """NaN or ±Inf is a caller error naming the argument (apply a NaN strategy first)."""
        with pytest.raises(ValueError, match="control"):
            mann_whitney([1.0, 2.0], bad)

    @pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, float("nan")])
    def test_confidence_outside_unit_interval_is_refused(self, confidence: float) -> None:
        """A confidence outside (0, 1) is an error naming it."""
        with pytest.raises(ValueError, match="confidence"):
            mann_whitney([1.0, 2.0], [3.0], confidence=confidence)

    def test_two_dimensional_input_is_refused(self) -> None:
        """mann_whitney takes one-dimensional samples; the message names the argument."""
        with pytest.raises(ValueError, match="experiment"):
            mann_whitney([[1.0, 2.0]], [3.0])


class TestProperties:
    """Properties of the interval, the estimate and the batched form."""

    @settings(max_examples=300, deadline=None)
    @given(sample_pairs(), CONFIDENCES)
    def test_interval_contains_estimate(
        self, pair: tuple[FloatArray, FloatArray], confidence: float
    ) -> None:
        """lower ≤ estimate ≤ upper always, ties and constant samples included.

        No tied case breaks this: z_q > 0 for every confidence in (0, 1), so the lower end is
        the k-th difference with k ≤ ⌈nm/2 − ½⌉ and the upper end the k-th with
        k ≥ ⌈nm/2 + ½⌉, which bracket the median (both sides constant: all three are c).
        """
        x, y = pair
        result = mann_whitney(x, y, confidence=confidence)
        assert result.lower <= result.estimate <= result.upper

    @settings(max_examples=100, deadline=None)
    @given(sample_pairs(max_size=30, exact_grid=True, varied=True))
    def test_wider_confidence_gives_wider_interval(
        self, pair: tuple[FloatArray, FloatArray]
    ) -> None:
        """A higher confidence never narrows the interval."""
        x, y = pair
        narrow = mann_whitney(x, y, confidence=0.9)
        wide = mann_whitney(x, y, confidence=0.99)
        assert wide.lower <= narrow.lower
        assert wide.upper >= narrow.upper

    @settings(max_examples=100, deadline=None)
    @given(sample_pairs(max_size=30, exact_grid=True))
    def test_swapping_sides_mirrors_the_result(self, pair: tuple[FloatArray, FloatArray]) -> None:
        """Comparing y with x negates and swaps the interval and keeps the p-value."""
        x, y = pair
        ab, ba = mann_whitney(x, y), mann_whitney(y, x)
        assert (ba.lower, ba.upper, ba.estimate) == (-ab.upper, -ab.lower, -ab.estimate)
        assert ba.p_value == pytest.approx(ab.p_value, abs=1e-12)

    @settings(max_examples=60, deadline=None)
    @given(
        st.integers(1, 12),
        st.integers(1, 20),
        st.integers(1, 20),
        st.integers(0, 2**32 - 1),
        st.integers(1, 5),
    )
    def test_batch_equals_single(self, rows: int, n: int, m: int, seed: int, chunk: int) -> None:
        """mann_whitney_batch row i equals mann_whitney(row i), across chunk boundaries."""
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 6, size=(rows, n)) * 0.5
        y = rng.integers(0, 6, size=(rows, m)) * 0.5
        x[0] = 1.0  # a constant experiment row; the grid also yields tied and constant rows
        batch = mann_whitney_batch(x, y, chunk=chunk)
        single = [mann_whitney(x[i], y[i]) for i in range(rows)]
        assert [repr(r) for r in batch] == [repr(r) for r in single]

    def test_batch_refuses_mismatched_rows(self) -> None:
        """Batches need B×n and B×m arrays with the same B."""
        with pytest.raises(ValueError, match="B×n and B×m"):
            mann_whitney_batch(np.ones((2, 3)), np.ones((3, 3)))

    def test_result_is_frozen(self) -> None:
        """Results are immutable values."""
        result = mann_whitney([1.0, 2.0], [3.0])
        assert isinstance(result, MannWhitneyResult)
        with pytest.raises(AttributeError):
            result.lower = 0.0  # type: ignore[misc]
