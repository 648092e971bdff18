"""judges.classifier: Kayenta's Mann-Whitney metric classification, case by case: degenerate
inputs, the decision rules, and option checks. (The properties are in
``test_classifier_properties``.)"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from judges.classifier import MannWhitneyOptions, classify
from judges.effect import cles
from judges.judgement import MetricJudgement
from judges.labels import Direction, EffectMeasure, Label, NanStrategy, OutlierStrategy

FloatArray = npt.NDArray[np.float64]


def _sample(seed: int, n: int, loc: float = 10.0) -> FloatArray:
    return np.random.default_rng(seed).normal(loc, 1.0, n)


class TestSpecialCases:
    """Degenerate inputs get a deterministic label with a reason."""

    def test_empty_side_removed_is_nodata(self) -> None:
        """All-NaN canary with the remove strategy: Nodata, not critical."""
        result = classify([math.nan, math.nan], [1.0, 2.0])
        assert result.label is Label.NODATA
        assert result.reason == "no canary data"
        assert not result.critical
        assert result.test is None

    def test_empty_baseline_is_named(self) -> None:
        """The reason names the side without data."""
        assert classify([1.0], []).reason == "no baseline data"

    def test_empty_side_with_replace_passes(self) -> None:
        """An empty side with the replace strategy passes, as in Kayenta."""
        result = classify([], [1.0, 2.0], MannWhitneyOptions(nan_strategy=NanStrategy.REPLACE))
        assert result.label is Label.PASS
        assert "replace" in result.reason

    def test_replace_turns_missing_into_zero(self) -> None:
        """With replace, NaNs become 0.0 and take part in the test."""
        opts = MannWhitneyOptions(nan_strategy=NanStrategy.REPLACE)
        with_nan = classify([math.nan, 5.0, 6.0], [5.0, 6.0, 7.0], opts)
        zeros = classify([0.0, 5.0, 6.0], [5.0, 6.0, 7.0], opts)
        assert repr(with_nan) == repr(zeros)
        assert with_nan.experiment.count == 3

    def test_remove_drops_missing_values(self) -> None:
        """With remove, NaNs are dropped before the test."""
        assert repr(classify([1.0, math.nan, 3.0], [2.0, 4.0])) == repr(
            classify([1.0, 3.0], [2.0, 4.0])
        )

    def test_must_have_data_fails_the_metric(self) -> None:
        """mustHaveData on a non-critical metric turns no data into NodataFailMetric."""
        result = classify([], [1.0], MannWhitneyOptions(must_have_data=True))
        assert result.label is Label.NODATA_FAIL_METRIC
        assert not result.critical

    @pytest.mark.parametrize("must_have_data", [False, True])
    def test_critical_nodata_is_critical(self, must_have_data: bool) -> None:
        """A critical metric without data is Nodata flagged critical (mustHaveData or not)."""
        opts = MannWhitneyOptions(critical=True, must_have_data=must_have_data)
        result = classify([1.0, 2.0], [], opts)
        assert result.label is Label.NODATA
        assert result.critical

    def test_one_distinct_value_passes(self) -> None:
        """One value over both sides (different counts) passes with that reason."""
        result = classify([3.0, 3.0, 3.0], [3.0], MannWhitneyOptions(tolerance=0.0))
        assert result.label is Label.PASS
        assert result.reason == "one distinct value over both sides"
        assert result.ratio == 1.0

    def test_identical_samples_reason(self) -> None:
        """Identical samples pass with that reason and ratio 1."""
        result = classify([1.0, 2.0, 3.0], [3.0, 1.0, 2.0])
        assert result.reason == "the canary and baseline data are identical"
        assert result.ratio == 1.0

    @pytest.mark.parametrize(
        ("canary", "baseline", "label"), [(2.0, 1.0, Label.HIGH), (1.0, 2.0, Label.LOW)]
    )
    def test_both_constant_different_values(
        self, canary: float, baseline: float, label: Label
    ) -> None:
        """Both sides constant at different values: High or Low every time, reason says why."""
        results = {repr(classify([canary] * 6, [baseline] * 6)) for _ in range(3)}
        assert len(results) == 1
        result = classify([canary] * 6, [baseline] * 6)
        assert result.label is label
        assert result.test is not None
        assert result.test.lower == result.test.upper == canary - baseline
        assert "both sides constant" in result.test.reason
        assert f"CI [{canary - baseline:g}, {canary - baseline:g}]" in result.reason

    @pytest.mark.parametrize("bad", [math.inf, -math.inf])
    @pytest.mark.parametrize("critical", [False, True])
    def test_infinite_values_are_error(self, bad: float, critical: bool) -> None:
        """±Inf makes the metric Error with a reason; critical follows the metric's flag."""
        result = classify([1.0, bad], [1.0, 2.0], MannWhitneyOptions(critical=critical))
        assert result.label is Label.ERROR
        assert "Inf" in result.reason
        assert result.critical is critical

    @pytest.mark.parametrize("bad", [math.inf, -math.inf])
    def test_infinite_values_survive_outlier_removal(self, bad: float) -> None:
        """±Inf is reported as Error even with IQR outlier removal on."""
        opts = MannWhitneyOptions(outliers=OutlierStrategy.REMOVE)
        assert classify([1.0, 2.0, 3.0, bad], [1.0, 2.0], opts).label is Label.ERROR


class TestDecision:
    """The interval, the tolerance band, the direction and the effect-size gates."""

    shifted = (_sample(1, 40, 12.0), _sample(2, 40, 10.0))

    def test_clear_increase_is_high_with_evidence(self) -> None:
        """A clear increase is High; the judgement carries the test, ratio and both sides' stats."""
        x, y = self.shifted
        result = classify(x, y)
        assert result.label is Label.HIGH
        assert result.test is not None
        assert result.test.lower > 0.25 * abs(result.test.estimate)
        assert result.ratio == pytest.approx(x.mean() / y.mean())
        assert result.effect == result.ratio
        assert (result.experiment.count, result.control.count) == (40, 40)
        assert result.reason.startswith("canary higher")

    def test_clear_decrease_is_low(self) -> None:
        """The mirror image is Low."""
        x, y = self.shifted
        assert classify(y, x).label is Label.LOW

    def test_direction_increase_ignores_decreases(self) -> None:
        """Direction increase never reports Low."""
        x, y = self.shifted
        assert classify(y, x, MannWhitneyOptions(direction=Direction.INCREASE)).label is Label.PASS

    def test_direction_decrease_ignores_increases(self) -> None:
        """Direction decrease never reports High."""
        x, y = self.shifted
        assert classify(x, y, MannWhitneyOptions(direction=Direction.DECREASE)).label is Label.PASS

    def test_tolerance_band_absorbs_small_shifts(self) -> None:
        """A significant shift inside ±tolerance·|estimate| passes."""
        x, y = self.shifted
        test = classify(x, y).test
        assert test is not None
        # The band is tolerance·|estimate|; just above lower/|estimate| the shift passes.
        tolerance = test.lower / abs(test.estimate) + 1e-6
        assert classify(x, y, MannWhitneyOptions(tolerance=tolerance)).label is Label.PASS
        assert classify(x, y, MannWhitneyOptions(tolerance=tolerance - 2e-6)).label is Label.HIGH

    def test_allowed_increase_blocks_high_below_it(self) -> None:
        """meanRatio below allowed_increase keeps a significant increase at Pass."""
        x, y = self.shifted
        ratio = x.mean() / y.mean()
        below = classify(x, y, MannWhitneyOptions(allowed_increase=ratio + 0.01))
        at = classify(x, y, MannWhitneyOptions(allowed_increase=ratio))
        assert below.label is Label.PASS
        assert at.label is Label.HIGH

    def test_allowed_decrease_blocks_low_above_it(self) -> None:
        """meanRatio above allowed_decrease keeps a significant decrease at Pass."""
        x, y = self.shifted
        ratio = y.mean() / x.mean()
        assert classify(y, x, MannWhitneyOptions(allowed_decrease=ratio - 0.01)).label is Label.PASS
        assert classify(y, x, MannWhitneyOptions(allowed_decrease=ratio)).label is Label.LOW

    def test_critical_increase_sets_critical_only_above_it(self) -> None:
        """A critical metric's High is critical only when the effect reaches critical_increase."""
        x, y = self.shifted
        ratio = x.mean() / y.mean()
        above = classify(x, y, MannWhitneyOptions(critical=True, critical_increase=ratio - 0.01))
        below = classify(x, y, MannWhitneyOptions(critical=True, critical_increase=ratio + 0.01))
        assert (above.label, above.critical) == (Label.HIGH, True)
        assert (below.label, below.critical) == (Label.HIGH, False)
        assert "(critical)" in above.reason

    def test_critical_decrease_sets_critical_only_below_it(self) -> None:
        """A critical metric's Low is critical only when the effect is at most critical_decrease."""
        x, y = self.shifted
        ratio = y.mean() / x.mean()
        hit = classify(y, x, MannWhitneyOptions(critical=True, critical_decrease=ratio + 0.01))
        miss = classify(y, x, MannWhitneyOptions(critical=True, critical_decrease=ratio - 0.01))
        assert (hit.label, hit.critical) == (Label.LOW, True)
        assert (miss.label, miss.critical) == (Label.LOW, False)

    def test_non_critical_metric_is_never_critical(self) -> None:
        """Without critical: true a High is not critical, whatever critical_increase says."""
        x, y = self.shifted
        assert not classify(x, y, MannWhitneyOptions(critical_increase=1.0)).critical

    def test_undefined_ratio_does_not_block(self) -> None:
        """A zero baseline mean makes meanRatio NaN; the gates then let the test decide."""
        y = np.array([-2.0, -1.0, 0.0, 1.0, 2.0] * 4)
        x = y + 10.0
        result = classify(x, y, MannWhitneyOptions(allowed_increase=5.0))
        assert math.isnan(result.ratio)
        assert result.label is Label.HIGH

    def test_cles_measure(self) -> None:
        """With cles, the effect is P(canary > baseline) and the gates apply to it."""
        x, y = self.shifted
        value = cles(x, y)
        opts = MannWhitneyOptions(effect_measure=EffectMeasure.CLES)
        result = classify(x, y, opts)
        assert result.effect == pytest.approx(value)
        assert 0.5 < value < 1.0
        blocked = MannWhitneyOptions(
            effect_measure=EffectMeasure.CLES, allowed_increase=value + 0.01
        )
        assert result.label is Label.HIGH
        assert classify(x, y, blocked).label is Label.PASS

    def test_cles_default_gate_is_one_half(self) -> None:
        """An unset cles gate is 0.5, the no-effect value: any significant increase reaches it."""
        opts = MannWhitneyOptions(effect_measure=EffectMeasure.CLES)
        assert opts.threshold("allowed_increase") == 0.5
        assert MannWhitneyOptions().threshold("allowed_increase") == 1.0

    def test_muted_is_carried(self) -> None:
        """A muted metric is still classified and marked muted."""
        x, y = self.shifted
        result = classify(x, y, MannWhitneyOptions(muted=True))
        assert (result.label, result.muted) == (Label.HIGH, True)

    def test_result_type(self) -> None:
        """classify returns a MetricJudgement."""
        assert isinstance(classify([1.0], [2.0]), MetricJudgement)


class TestOptions:
    """MannWhitneyOptions refuses values that make no sense, naming the option."""

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"tolerance": -0.1}, "tolerance"),
            ({"tolerance": math.nan}, "tolerance"),
            ({"tolerance": math.inf}, "tolerance"),
            ({"confidence": 1.0}, "confidence"),
            ({"confidence": 0.0}, "confidence"),
            ({"outlier_factor": 0.0}, "outlier_factor"),
        ],
    )
    def test_invalid_option(self, kwargs: dict[str, float], name: str) -> None:
        """The error message names the bad option."""
        with pytest.raises(ValueError, match=name):
            MannWhitneyOptions(**kwargs)  # type: ignore[arg-type]
