"""judges.mannwhitney.orderstats and .merges: order statistics of the pairwise differences without
the full sort, the exact merge counts under them, and the band tests built on both.

Every fast path must return exactly what sorting all n·m rounded differences returns, on
every kind of sample (continuous, rounded, heavily tied, zero-inflated, mixed signs, extreme
magnitudes), and each fallback must take over where its predecessor cannot decide. The band
tests built on them must equal R's W(d) evaluated literally with exact comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from judges.mannwhitney import bracketing, merges, orderstats
from judges.mannwhitney.ranksum import mann_whitney_arrays, mann_whitney_batch

FloatArray = npt.NDArray[np.float64]
Generator = Callable[[np.random.Generator, tuple[int, int]], FloatArray]

KINDS: dict[str, Generator] = {
    "latency ms": lambda r, s: np.round(r.lognormal(np.log(0.2), 0.3, s), 3),
    "normal": lambda r, s: r.normal(size=s),
    "small integers": lambda r, s: r.integers(0, 5, s).astype(float),
    "zero-inflated": lambda r, s: np.where(r.random(s) < 0.8, 0.0, r.poisson(2, s)).astype(float),
    "mixed sign": lambda r, s: np.round(r.normal(0, 3, s), 1),
    "huge": lambda r, s: r.normal(0, 1e300, s),
    "tiny": lambda r, s: r.normal(0, 1e-300, s),
    "wide range": lambda r, s: r.choice([-1e200, -1.0, 0.0, 1e-200, 3.0, 1e250], s),
    "subnormal": lambda r, s: r.integers(-50, 50, s) * 5e-324,
    "constant": lambda r, s: np.full(s, 0.25),
}


def _samples(kind: str, seed: int, rows: int, n: int, m: int) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    x = KINDS[kind](rng, (rows, n))
    y = KINDS[kind](rng, (rows, m))
    if kind != "constant":
        x[::3] += KINDS[kind](rng, (1, 1))[0, 0]  # some shifted rows
    return np.sort(x, axis=1), np.sort(y, axis=1)


def _groups(rows: int, pairs: int, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    low = rng.integers(1, pairs + 1, size=(rows, 1))
    top = rng.integers(1, pairs + 1, size=(rows, 1))
    middle = pairs // 2
    pair = np.array([middle, middle + 1]) if pairs > 1 else np.array([1, 1])
    return [low, np.broadcast_to(pair, (rows, 2)).copy(), top]


def _fast_then_settled(
    xs: FloatArray, ys: FloatArray, groups: list[npt.NDArray[np.int64]], chunk: int = 64
) -> list[FloatArray]:
    results = [np.empty(g.shape) for g in groups]
    unsettled = np.zeros((len(groups), xs.shape[0]), dtype=bool)
    scratch = merges.Scratch()
    for first in range(0, xs.shape[0], chunk):
        rows = slice(first, first + chunk)
        y_runs = merges.runs(ys[rows])
        _, _, found, open_ = orderstats.chunk_statistics(
            xs[rows], ys[rows], y_runs, [g[rows] for g in groups], scratch
        )
        for out, part in zip(results, found, strict=True):
            out[rows] = part
        unsettled[:, rows] = open_
    orderstats.settle(xs, ys, groups, results, unsettled)
    return results


class TestOrderStatistics:
    """D₍k₎ from probes and windows equals D₍k₎ from sorting every difference."""

    @pytest.mark.parametrize("kind", sorted(KINDS))
    @pytest.mark.parametrize(("n", "m"), [(60, 60), (25, 90), (90, 25), (200, 8), (13, 40)])
    def test_equals_the_full_sort(self, kind: str, n: int, m: int) -> None:
        """Any rank, every kind of sample, sizes around and above the grid's."""
        xs, ys = _samples(kind, 20261129 + n + m, 150, n, m)
        groups = _groups(xs.shape[0], n * m, np.random.default_rng(7))
        fast = _fast_then_settled(xs, ys, groups)
        for ranks, got in zip(groups, fast, strict=True):
            np.testing.assert_array_equal(got, orderstats.full_order_stats(xs, ys, ranks))

    @settings(max_examples=60, deadline=None)
    @given(
        st.sampled_from(sorted(KINDS)),
        st.integers(0, 2**32 - 1),
        st.integers(20, 90),
        st.integers(20, 90),
    )
    def test_equals_the_full_sort_generated(self, kind: str, seed: int, n: int, m: int) -> None:
        """The same on generated sizes and seeds."""
        xs, ys = _samples(kind, seed, 40, n, m)
        groups = _groups(xs.shape[0], n * m, np.random.default_rng(seed))
        for ranks, got in zip(groups, _fast_then_settled(xs, ys, groups), strict=True):
            np.testing.assert_array_equal(got, orderstats.full_order_stats(xs, ys, ranks))

    @pytest.mark.parametrize("kind", ["latency ms", "small integers", "zero-inflated", "normal"])
    def test_each_stage_is_exact_where_it_claims_to_be(self, kind: str) -> None:
        """The single probe and the bracketing each either answer exactly or say they cannot;
        every stage answers some rows (so each is exercised) on these samples."""
        xs, ys = _samples(kind, 5, 300, 60, 60)
        pairs = merges.prepare_pairs(xs, ys, pad=orderstats.WINDOW + 1)
        grid = bracketing.difference_grid(pairs.xsc, pairs.ysc)
        for ranks in _groups(xs.shape[0], 3600, np.random.default_rng(11)):
            reference = orderstats.full_order_stats(xs, ys, ranks)
            found, ok = orderstats._windowed(pairs, grid, ranks, merges.Scratch())
            np.testing.assert_array_equal(found[ok], reference[ok])
            again, settled = bracketing.bracketed(pairs, grid, ranks)
            np.testing.assert_array_equal(again[settled], reference[settled])
            assert settled.any()

    def test_windows_leave_rows_to_the_later_stages(self) -> None:
        """Heavily tied samples defeat the single probe on most rows; the bracketing and its
        handling of runs of equal differences settle them, exactly."""
        xs, ys = _samples("small integers", 3, 200, 60, 60)
        pairs = merges.prepare_pairs(xs, ys, pad=orderstats.WINDOW + 1)
        grid = bracketing.difference_grid(pairs.xsc, pairs.ysc)
        ranks = np.full((200, 1), 1357)
        _, ok = orderstats._windowed(pairs, grid, ranks, merges.Scratch())
        assert (~ok).mean() > 0.5
        found, settled = bracketing.bracketed(pairs, grid, ranks)
        assert settled.all()
        np.testing.assert_array_equal(found, orderstats.full_order_stats(xs, ys, ranks))

    def test_rows_beyond_exact_scaling_take_the_full_sort(self) -> None:
        """A row spanning more than the scaling can keep exact (1e300 beside subnormals) is
        marked unscaled and still answered exactly."""
        rng = np.random.default_rng(1)
        xs = np.sort(rng.normal(size=(4, 30)), axis=1)
        ys = np.sort(rng.normal(size=(4, 30)), axis=1)
        xs[1, -1], ys[1, 0] = 1e300, 5e-324
        xs[1].sort()
        ys[1].sort()
        pairs = merges.prepare_pairs(xs, ys, pad=orderstats.WINDOW + 1)
        assert pairs.scaled.tolist() == [True, False, True, True]
        groups = _groups(4, 900, rng)
        for ranks, got in zip(groups, _fast_then_settled(xs, ys, groups), strict=True):
            np.testing.assert_array_equal(got, orderstats.full_order_stats(xs, ys, ranks))

    def test_exact_comparisons_not_rounded_ones(self) -> None:
        """Merging counts x_i − y_j ≤ v on the exact differences: 1.1 − 0.1 rounds to 1.0 but
        lies above it, so at v = 1.0 the pair is not counted (a rounded comparison would)."""
        xs = np.array([[1.1]])
        ys = np.array([[0.1]])
        assert 1.1 - 0.1 == 1.0
        assert Fraction(1.1) - Fraction(0.1) > 1
        pairs = merges.prepare_pairs(xs, ys, pad=orderstats.WINDOW + 1)
        v = np.ldexp(np.array([1.0]), -pairs.exponent)  # in the scaled units
        lt = merges.below(pairs.ykeys, merges.shifted_keys(pairs.xsc, v))
        assert lt.tolist() == [[1]]  # y lies below x − v: x − y ≤ v does not hold
        strict = merges.below(pairs.ykeys, merges.shifted_keys(pairs.xsc, v, strict=True))
        assert strict.tolist() == [[1]]


class TestRunsAndPooled:
    """Tie terms and U against plain references."""

    @settings(max_examples=80, deadline=None)
    @given(st.integers(0, 2**32 - 1), st.integers(1, 70), st.sampled_from([2, 5, 40, 10**6]))
    def test_runs_equal_unique_counts(self, seed: int, n: int, spread: int) -> None:
        """Σ(t³ − t), the longest run and the equal pairs equal np.unique's counts, for short
        runs (comparisons) and long ones (the scan)."""
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.integers(0, spread, size=(6, n)).astype(float), axis=1)
        got = merges.runs(rows)
        for i, row in enumerate(rows):
            t = np.unique(row, return_counts=True)[1]
            assert got.tie[i] == float((t**3 - t).sum())
            assert got.longest[i] == t.max()
            assert got.pairs[i] == (t * (t - 1) // 2).sum()

    @pytest.mark.parametrize("kind", sorted(KINDS))
    def test_u_and_pooled_ties(self, kind: str) -> None:
        """U equals scipy's statistic; the pooled tie term equals np.unique's."""
        xs, ys = _samples(kind, 9, 30, 40, 35)
        pairs = merges.prepare_pairs(xs, ys, pad=orderstats.WINDOW + 1)
        u, tie = merges.pooled_statistics(pairs, merges.runs(ys), merges.Scratch())
        for i in range(xs.shape[0]):
            assert u[i] == stats.mannwhitneyu(xs[i], ys[i], method="asymptotic").statistic
            t = np.unique(np.concatenate([xs[i], ys[i]]), return_counts=True)[1]
            assert tie[i] == float((t**3 - t).sum())


# --- the band tests against R's W(d) with exact comparisons ------------------------------------


def _w_reference(x: FloatArray, y: FloatArray, d: float) -> float:
    """R's W(d) for the pooled (x − d, y), compared exactly (as fractions)."""
    n, m = x.size, y.size
    fx = [Fraction(float(v)) - Fraction(d) for v in x]
    fy = [Fraction(float(v)) for v in y]
    u = sum((1.0 if a > b else 0.5 if a == b else 0.0) for a in fx for b in fy)
    _, counts = np.unique(np.array([*fx, *fy], dtype=object), return_counts=True)
    t = counts.astype(np.float64)
    total = n + m
    var = n * m / 12 * ((total + 1) - float((t**3 - t).sum()) / (total * (total - 1)))
    dz = u - n * m / 2
    w = (dz - 0.5 * np.sign(dz)) / math.sqrt(var) if var > 0 else 0.0
    return w if math.isfinite(w) else 0.0


class TestBandTests:
    """above_band / below_band equal W(±band) ≷ ±z computed literally."""

    @pytest.mark.parametrize(
        "kind", ["latency ms", "small integers", "zero-inflated", "mixed sign"]
    )
    @pytest.mark.parametrize("tolerance", [0.0, 0.25, 1.0])
    def test_equal_the_literal_statistic(self, kind: str, tolerance: float) -> None:
        """Rows of every tie pattern, including bands equal to an interval end."""
        xs, ys = _samples(kind, 4, 24, 21, 20)
        confidence = 0.9
        zq = float(special.ndtri(1 - (1 - confidence) / 2))
        got = mann_whitney_arrays(xs, ys, confidence=confidence, tolerance=tolerance)
        for i in range(xs.shape[0]):
            band = float(got.band[i])
            assert got.above_band[i] == (_w_reference(xs[i], ys[i], band) > zq), i
            assert got.below_band[i] == (_w_reference(xs[i], ys[i], -band) < -zq), i

    @settings(max_examples=40, deadline=None)
    @given(
        kind=st.sampled_from(["small integers", "zero-inflated", "mixed sign", "latency ms"]),
        seed=st.integers(0, 2**32 - 1),
        n=st.integers(20, 34),
        m=st.integers(20, 34),
        confidence=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.98, 0.999]),
        tolerance=st.sampled_from([0.0, 0.1, 0.25, 0.5, 2.0]),
    )
    def test_equal_the_literal_statistic_generated(
        self, *, kind: str, seed: int, n: int, m: int, confidence: float, tolerance: float
    ) -> None:
        """The same over generated sizes, confidences and tolerances."""
        xs, ys = _samples(kind, seed, 4, n, m)
        zq = float(special.ndtri(1 - (1 - confidence) / 2))
        got = mann_whitney_arrays(xs, ys, confidence=confidence, tolerance=tolerance)
        for i in range(xs.shape[0]):
            band = float(got.band[i])
            assert got.above_band[i] == (_w_reference(xs[i], ys[i], band) > zq)
            assert got.below_band[i] == (_w_reference(xs[i], ys[i], -band) < -zq)

    def test_band_on_the_interval_end(self) -> None:
        """Kayenta's "High Metric (Large Input)" shape: zero-inflated, the interval ends on the
        band (0); decided by the literal W, not by comparing with the interval."""
        x = np.array([0.0] * 40 + [1.0] * 20)
        y = np.array([0.0] * 58 + [1.0] * 2)
        got = mann_whitney_arrays(x[None, :], y[None, :], confidence=0.98, tolerance=0.25)
        zq = float(special.ndtri(0.99))
        assert got.band[0] == 0.0
        assert got.above_band[0] == (_w_reference(x, y, 0.0) > zq)

    def test_batch_paths_agree(self) -> None:
        """A batch judged chunk by chunk equals the rows judged one by one."""
        xs, ys = _samples("latency ms", 12, 90, 60, 60)
        batch = mann_whitney_batch(xs, ys, tolerance=0.25, chunk=32)
        single = [
            mann_whitney_batch(xs[i : i + 1], ys[i : i + 1], tolerance=0.25)[0] for i in range(90)
        ]
        assert [repr(r) for r in batch] == [repr(r) for r in single]
