"""sequential_mean: properties that hold for any data (hypothesis); the e-Bonferroni split."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from judges.labels import Direction
from judges.sequential.count import sequential_count
from judges.sequential.ebonferroni import e_bonferroni_threshold
from judges.sequential.mean import sequential_mean
from support.count_streams import count_stream

FloatArray = npt.NDArray[np.float64]
ALPHA = 0.05


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
        ea, na, eb, nb = count_stream(1)
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
