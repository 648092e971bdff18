"""judges.classifier: Kayenta's Mann-Whitney metric classification as properties (hypothesis).

Generated samples live on a grid of quarters (exact in binary floating point), so shifting a
sample moves every pairwise difference exactly and the properties are not blurred by rounding.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from judges.classifier import MannWhitneyOptions, classify, classify_stacked
from judges.labels import Direction, EffectMeasure, Label, NanStrategy, OutlierStrategy

FloatArray = npt.NDArray[np.float64]

MIRROR = {Label.HIGH: Label.LOW, Label.LOW: Label.HIGH, Label.PASS: Label.PASS}
ORDER = {Label.LOW: 0, Label.PASS: 1, Label.HIGH: 2}

positive_samples = st.lists(st.integers(1, 40), min_size=1, max_size=40).map(
    lambda v: np.array(v, dtype=np.float64) * 0.25
)
options = st.builds(
    MannWhitneyOptions,
    direction=st.just(Direction.EITHER),
    tolerance=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.98, 0.99]),
    effect_measure=st.sampled_from(list(EffectMeasure)),
)
shift_pairs = st.lists(st.integers(0, 80), min_size=2, max_size=2).map(sorted)
gated_options = st.builds(
    MannWhitneyOptions,
    direction=st.just(Direction.EITHER),
    tolerance=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.98, 0.99]),
    effect_measure=st.just(EffectMeasure.MEAN_RATIO),
    allowed_increase=st.sampled_from([None, 1.05, 1.5]),
    allowed_decrease=st.sampled_from([None, 0.95, 0.7]),
)


@st.composite
def stacked_inputs(draw: st.DrawFn) -> tuple[FloatArray, FloatArray, MannWhitneyOptions]:
    """B×n and B×m samples with missing values and special rows, and options to judge them."""
    rows, n, m = draw(st.integers(1, 8)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 5, size=(rows, n)) * 0.5 + rng.integers(0, 2, size=(rows, 1))
    y = rng.integers(0, 5, size=(rows, m)) * 0.5
    x[rng.random(x.shape) < 0.1] = np.nan
    for i, kind in enumerate(rng.integers(0, 5, size=rows).tolist()):
        if kind == 1 and n == m:
            x[i] = y[i][::-1]  # identical samples
        elif kind == 2:
            x[i], y[i] = 2.0, 1.0  # both constant
        elif kind == 3:
            x[i, 0] = np.inf
        elif kind == 4:
            x[i] = np.nan  # no canary data
    opts = MannWhitneyOptions(
        nan_strategy=draw(st.sampled_from(list(NanStrategy))),
        outliers=draw(st.sampled_from(list(OutlierStrategy))),
        critical=draw(st.booleans()),
        effect_measure=draw(st.sampled_from(list(EffectMeasure))),
    )
    return x, y, opts


class TestProperties:
    """Hypothesis properties of the classification."""

    @settings(deadline=None)
    @given(positive_samples, st.randoms(use_true_random=False), options)
    def test_identical_samples_pass(
        self, x: FloatArray, rnd: object, opts: MannWhitneyOptions
    ) -> None:
        """The same values in any order pass, whatever the options."""
        shuffled = x.copy()
        rnd.shuffle(shuffled)  # type: ignore[attr-defined]
        result = classify(x, shuffled, opts)
        assert result.label is Label.PASS
        assert not result.critical

    @settings(max_examples=200, deadline=None)
    @given(positive_samples, positive_samples, options)
    def test_swapping_sides_swaps_high_and_low(
        self, x: FloatArray, y: FloatArray, opts: MannWhitneyOptions
    ) -> None:
        """With direction either, classify(y, x) is classify(x, y) with High and Low swapped.

        Positive data: meanRatio's gates are mirror images (r ≥ 1 ⇔ 1/r ≤ 1) only when both
        means have the same sign.
        """
        forward, backward = classify(x, y, opts), classify(y, x, opts)
        assert backward.label is MIRROR[forward.label]

    @settings(max_examples=200, deadline=None)
    @given(positive_samples, positive_samples, shift_pairs, gated_options)
    def test_larger_shift_never_improves(
        self, x: FloatArray, y: FloatArray, shifts: list[int], opts: MannWhitneyOptions
    ) -> None:
        """Shifting the canary up by more never moves it down the order Low < Pass < High."""
        small, large = shifts
        before = classify(x + small * 0.25, y, opts).label
        after = classify(x + large * 0.25, y, opts).label
        assert ORDER[after] >= ORDER[before]

    @settings(max_examples=200, deadline=None)
    @given(positive_samples, positive_samples, shift_pairs, gated_options)
    def test_larger_shift_never_returns_to_pass(
        self, x: FloatArray, y: FloatArray, shifts: list[int], opts: MannWhitneyOptions
    ) -> None:
        """Direction increase: once High, a bigger upward shift of the canary stays High."""
        small, large = shifts
        up = replace(opts, direction=Direction.INCREASE)
        before = classify(x + small * 0.25, y, up).label
        after = classify(x + large * 0.25, y, up).label
        assert before in (Label.PASS, Label.HIGH)
        if before is Label.HIGH:
            assert after is Label.HIGH

    @settings(max_examples=200, deadline=None)
    @given(positive_samples, positive_samples, st.sampled_from([1.0, 1.5, 4.0]), options)
    def test_tolerance_of_one_or_more_never_fails(
        self, x: FloatArray, y: FloatArray, tolerance: float, opts: MannWhitneyOptions
    ) -> None:
        """Tolerance ≥ 1 never gives High or Low: the interval's near end is within ±|estimate|."""
        wide = MannWhitneyOptions(tolerance=tolerance, confidence=opts.confidence)
        assert classify(x, y, wide).label is Label.PASS

    @settings(max_examples=100, deadline=None)
    @given(stacked_inputs())
    def test_stacked_equals_row_by_row(
        self, case: tuple[FloatArray, FloatArray, MannWhitneyOptions]
    ) -> None:
        """classify_stacked returns exactly classify of each row, special rows included."""
        x, y, opts = case
        stacked = classify_stacked(x, y, opts)
        single = [classify(x[i], y[i], opts) for i in range(x.shape[0])]
        assert [repr(j) for j in stacked] == [repr(j) for j in single]

    def test_aa_stream_rarely_rejects(self) -> None:
        """A/A: 2000 seeded draws from one distribution at 98 % confidence reject about 2 %."""
        rng = np.random.default_rng(20261129)
        x, y = rng.lognormal(0, 0.5, (2000, 60)), rng.lognormal(0, 0.5, (2000, 60))
        labels = [j.label for j in classify_stacked(x, y, MannWhitneyOptions(tolerance=0.0))]
        rejected = sum(label is not Label.PASS for label in labels) / len(labels)
        assert 0.005 < rejected < 0.03
