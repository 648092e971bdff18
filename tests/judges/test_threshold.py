"""judges.threshold: hard lines on the canary's window (threshold judge and kill-switch)."""

from __future__ import annotations

import math

import pytest

from judges.labels import Label
from judges.threshold import ThresholdRule, threshold_counts, threshold_series


class TestSeries:
    """Series windows are judged on the mean of their points."""

    def test_absolute_max(self) -> None:
        """Mean above max is High; the reason gives the value and the line."""
        result = threshold_series(ThresholdRule(metric="p99", max=0.5), [0.4, 0.7])
        assert result.label is Label.HIGH
        assert result.canary == pytest.approx(0.55)
        assert result.reason == "p99: canary 0.55 > max 0.5"

    def test_at_the_line_passes(self) -> None:
        """A mean equal to max passes (the line itself is allowed)."""
        assert threshold_series(ThresholdRule(metric="m", max=2.0), [1.0, 3.0]).label is Label.PASS

    def test_absolute_min(self) -> None:
        """Mean below min is Low."""
        assert threshold_series(ThresholdRule(metric="m", min=10.0), [9.0, 10.0]).label is Label.LOW

    def test_max_increase(self) -> None:
        """canary − baseline above max_increase is High; at or below it passes."""
        rule = ThresholdRule(metric="lat", max_increase=0.05)
        assert threshold_series(rule, [0.30, 0.32], [0.25, 0.25]).label is Label.HIGH
        assert threshold_series(rule, [0.28, 0.30], [0.25, 0.25]).label is Label.PASS

    def test_max_ratio(self) -> None:
        """canary / baseline above max_ratio is High; exactly max_ratio passes."""
        rule = ThresholdRule(metric="m", max_ratio=1.5)
        assert threshold_series(rule, [4.0], [2.0]).label is Label.HIGH
        assert threshold_series(rule, [3.0], [2.0]).label is Label.PASS

    def test_zero_baseline_ratio(self) -> None:
        """With a zero baseline any positive canary is an infinite ratio; zero over zero passes."""
        rule = ThresholdRule(metric="m", max_ratio=1000.0)
        high = threshold_series(rule, [0.001], [0.0, 0.0])
        assert high.label is Label.HIGH
        assert "inf" in high.reason
        assert threshold_series(rule, [0.0], [0.0]).label is Label.PASS

    def test_relative_rule_without_baseline_is_nodata(self) -> None:
        """A rule that needs the baseline gives Nodata when there is none."""
        rule = ThresholdRule(metric="m", max_increase=1.0)
        assert threshold_series(rule, [1.0], [math.nan]).label is Label.NODATA
        assert threshold_series(rule, [1.0]).label is Label.NODATA

    def test_absolute_line_needs_no_baseline(self) -> None:
        """An absolute breach is High even when the relative part has no baseline."""
        rule = ThresholdRule(metric="m", max=1.0, max_increase=1.0)
        assert threshold_series(rule, [2.0]).label is Label.HIGH

    def test_min_points_guard(self) -> None:
        """Fewer non-missing points than min_points is Nodata, never a verdict."""
        rule = ThresholdRule(metric="m", max=0.0, min_points=3)
        result = threshold_series(rule, [5.0, math.nan, 5.0])
        assert result.label is Label.NODATA
        assert result.reason == "2 canary points < min_points 3"
        assert threshold_series(rule, [5.0, 5.0, 5.0]).label is Label.HIGH

    def test_missing_points_are_ignored(self) -> None:
        """NaN points do not enter the mean."""
        result = threshold_series(ThresholdRule(metric="m", max=10.0), [1.0, math.nan, 3.0])
        assert result.canary == 2.0


class TestCounts:
    """Count windows are judged on Σevents / Σexposure."""

    def test_rate_is_pooled(self) -> None:
        """The rate pools the window: (1 + 3) / (1000 + 1000) = 0.002 > 0.001."""
        rule = ThresholdRule(metric="err", max=0.001)
        result = threshold_counts(rule, [1, 3], [1000, 1000])
        assert result.canary == 0.002
        assert result.label is Label.HIGH

    def test_min_exposure_guard(self) -> None:
        """Less canary exposure than min_exposure is Nodata; enough gives a verdict."""
        rule = ThresholdRule(metric="err", max=0.001, min_exposure=200)
        low = threshold_counts(rule, [5], [199])
        assert low.label is Label.NODATA
        assert "min_exposure 200" in low.reason
        assert threshold_counts(rule, [5], [200]).label is Label.HIGH

    def test_zero_exposure_is_nodata(self) -> None:
        """No exposure at all is Nodata even with min_exposure 0 (the rate is undefined)."""
        assert threshold_counts(ThresholdRule(metric="e", max=0.1), [0], [0]).label is Label.NODATA

    def test_relative_to_baseline_rate(self) -> None:
        """max_ratio compares the two pooled rates: 0.02 / 0.01 = 2 > 1.5."""
        rule = ThresholdRule(metric="err", max_ratio=1.5)
        result = threshold_counts(rule, [20], [1000], [10], [1000])
        assert (result.canary, result.baseline) == (0.02, 0.01)
        assert result.label is Label.HIGH

    def test_zero_error_baseline(self) -> None:
        """A zero-error baseline with max_increase still judges the canary (kayenta#377)."""
        rule = ThresholdRule(metric="err", max_increase=0.001)
        result = threshold_counts(rule, [5], [1000], [0], [1000])
        assert result.baseline == 0.0
        assert result.label is Label.HIGH

    def test_missing_steps_are_dropped_in_pairs(self) -> None:
        """A step with a missing events or exposure value is dropped as a whole."""
        rule = ThresholdRule(metric="err", max=1.0)
        result = threshold_counts(rule, [1, math.nan, 2], [10, 10, math.nan])
        assert result.canary == 0.1

    def test_lengths_must_match(self) -> None:
        """Events and exposure of different lengths are a caller error."""
        with pytest.raises(ValueError, match="differ in length"):
            threshold_counts(ThresholdRule(metric="e", max=1.0), [1, 2], [10])


class TestRule:
    """ThresholdRule refuses rules that check nothing."""

    def test_needs_a_bound(self) -> None:
        """A rule without min, max, max_increase or max_ratio is refused, naming the metric."""
        with pytest.raises(ValueError, match="'err' sets none of"):
            ThresholdRule(metric="err")

    @pytest.mark.parametrize("kwargs", [{"min_points": 0}, {"min_exposure": -1.0}])
    def test_guards_must_be_sensible(self, kwargs: dict[str, float]) -> None:
        """min_points ≥ 1 and min_exposure ≥ 0."""
        with pytest.raises(ValueError, match="min_points"):
            ThresholdRule(metric="m", max=1.0, **kwargs)  # type: ignore[arg-type]

    def test_relative(self) -> None:
        """relative says whether the baseline is needed."""
        assert ThresholdRule(metric="m", max_ratio=2.0).relative
        assert not ThresholdRule(metric="m", max=2.0).relative
