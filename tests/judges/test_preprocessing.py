"""judges.preprocessing: NaN strategies, IQR outlier fences and summary statistics.

Percentiles are R's type 7 (Hyndman & Fan 1996, "Sample quantiles in statistical packages",
definition 7), which is numpy's ``method="linear"``: with the sample sorted and 1-based,
h = (n − 1)·p + 1 and Q(p) = x⌊h⌋ + (h − ⌊h⌋)·(x⌊h⌋+1 − x⌊h⌋).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from judges.labels import NanStrategy, OutlierStrategy
from judges.preprocessing import describe, iqr_fences, prepare, remove_outliers

FloatArray = npt.NDArray[np.float64]

# The worked example: 1..9 and one outlier at 100.
EXAMPLE = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 100])


def _type7(values: FloatArray, p: float) -> float:
    """Hyndman & Fan definition 7, written out (0-based: h = (n − 1)·p)."""
    xs = np.sort(values)
    h = (xs.size - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, xs.size - 1)
    return float(xs[lo] + (h - lo) * (xs[hi] - xs[lo]))


class TestNanStrategy:
    """Missing values are dropped or replaced by 0.0."""

    def test_remove(self) -> None:
        """remove drops NaNs and keeps the order of the rest."""
        out = prepare([1.0, math.nan, 3.0, math.nan], nan_strategy=NanStrategy.REMOVE)
        assert out.tolist() == [1.0, 3.0]

    def test_replace(self) -> None:
        """replace puts 0.0 where values are missing."""
        out = prepare([math.nan, 2.0], nan_strategy=NanStrategy.REPLACE)
        assert out.tolist() == [0.0, 2.0]

    def test_infinities_are_not_missing(self) -> None:
        """±Inf is a value, not a missing one: neither strategy touches it."""
        for strategy in NanStrategy:
            assert prepare([math.inf], nan_strategy=strategy).tolist() == [math.inf]


class TestIqrFences:
    """Fences [min(P1, Q1 − f·IQR), max(P99, Q3 + f·IQR)] with type-7 percentiles."""

    def test_worked_example(self) -> None:
        """1..9 and 100, f = 3: lower −10.25, upper 91.81 (computed by hand below).

        n = 10, sorted, 1-based h = 9p + 1:
          Q1:  h = 3.25 → 3 + 0.25·(4 − 3)    = 3.25
          Q3:  h = 7.75 → 7 + 0.75·(8 − 7)    = 7.75      IQR = 4.5, f·IQR = 13.5
          P1:  h = 1.09 → 1 + 0.09·(2 − 1)    = 1.09
          P99: h = 9.91 → 9 + 0.91·(100 − 9)  = 91.81
          lower = min(1.09, 3.25 − 13.5) = −10.25;  upper = max(91.81, 7.75 + 13.5) = 91.81
        """
        lower, upper = iqr_fences(EXAMPLE, 3.0)
        assert lower == pytest.approx(-10.25)
        assert upper == pytest.approx(91.81)

    def test_iqr_fence_wins_without_outlier(self) -> None:
        """1..10, f = 3: Q3 + 3·IQR = 7.75 + 13.5 = 21.25 exceeds P99 = 9.91."""
        assert iqr_fences(np.arange(1.0, 11.0), 3.0)[1] == pytest.approx(21.25)

    @given(
        st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60).map(np.array),
        st.sampled_from([0.5, 1.5, 3.0]),
    )
    def test_equals_type7_written_out(self, values: FloatArray, factor: float) -> None:
        """The fences equal Hyndman & Fan definition 7 computed by hand."""
        q1, q3 = _type7(values, 0.25), _type7(values, 0.75)
        lower = min(_type7(values, 0.01), q1 - factor * (q3 - q1))
        upper = max(_type7(values, 0.99), q3 + factor * (q3 - q1))
        got = iqr_fences(values, factor)
        assert got[0] == pytest.approx(lower, rel=1e-12, abs=1e-9)
        assert got[1] == pytest.approx(upper, rel=1e-12, abs=1e-9)

    @pytest.mark.parametrize("factor", [0.0, -1.0, math.inf, math.nan])
    def test_factor_must_be_positive(self, factor: float) -> None:
        """The outlier factor must be a positive finite number."""
        with pytest.raises(ValueError, match="outlier factor"):
            iqr_fences(EXAMPLE, factor)


class TestRemoveOutliers:
    """Values outside the fences are dropped."""

    def test_drops_the_outlier(self) -> None:
        """100 lies above the upper fence 91.81 and is dropped; 1..9 stay."""
        assert remove_outliers(EXAMPLE, 3.0).tolist() == list(range(1, 10))

    def test_keeps_infinities_for_the_classifier(self) -> None:
        """±Inf is kept (the classifier reports it), and fences come from the finite values."""
        values = np.append(EXAMPLE[:-1], [math.inf, -math.inf])
        out = remove_outliers(values, 3.0)
        assert np.isinf(out).sum() == 2
        assert out.size == values.size

    def test_empty_stays_empty(self) -> None:
        """An empty side stays empty."""
        assert remove_outliers(np.empty(0)).size == 0


class TestPrepare:
    """prepare applies the NaN strategy, then outlier removal."""

    def test_nan_strategy_runs_first(self) -> None:
        """A NaN replaced by 0 can then be removed as an outlier.

        Data 0, 10..19 (n = 11), f = 1, 0-based h = 10p: P1 = 0 + 0.1·10 = 1.0, Q1 = 11.5,
        Q3 = 16.5, so lower = min(1.0, 11.5 − 5) = 1.0 and the replaced 0 falls below it.
        """
        values = [math.nan, *range(10, 20)]
        kept = prepare(
            values,
            nan_strategy=NanStrategy.REPLACE,
            outliers=OutlierStrategy.REMOVE,
            outlier_factor=1.0,
        )
        assert kept.tolist() == list(range(10, 20))
        assert prepare(values, nan_strategy=NanStrategy.REPLACE).tolist()[0] == 0.0

    def test_keep_leaves_outliers(self) -> None:
        """The default keeps every non-missing value."""
        assert prepare(EXAMPLE).tolist() == EXAMPLE.tolist()


class TestDescribe:
    """Summary statistics of one side, as Kayenta reports them."""

    def test_sample_standard_deviation(self) -> None:
        """std uses n − 1: [1, 2, 3, 4] has variance 5/3."""
        stats = describe(np.array([1.0, 2.0, 3.0, 4.0]))
        assert (stats.count, stats.mean, stats.min, stats.max) == (4, 2.5, 1.0, 4.0)
        assert stats.std == pytest.approx(math.sqrt(5 / 3))

    def test_single_value_has_zero_std(self) -> None:
        """One value has std 0, not NaN."""
        assert describe(np.array([7.0])).std == 0.0

    def test_empty_side_is_nan(self) -> None:
        """An empty side has count 0 and NaN statistics."""
        stats = describe(np.empty(0))
        assert stats.count == 0
        assert all(math.isnan(v) for v in (stats.mean, stats.std, stats.min, stats.max))

    def test_infinity_gives_quiet_nan_std(self) -> None:
        """A side with ±Inf describes without a warning: mean inf, std NaN."""
        stats = describe(np.array([1.0, math.inf]))
        assert stats.mean == math.inf
        assert math.isnan(stats.std)
