"""sequential_count: properties that hold for any data (hypothesis) and option handling."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judges.labels import Direction
from judges.sequential.count import sequential_count
from support.count_streams import CountTraffic, count_stream

FloatArray = npt.NDArray[np.float64]
ALPHA = 0.05
THRESHOLD = 1.0 / ALPHA
LOOKS = 60


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
        """failed ⇔ e ≥ m/α ⇔ lower > 1; proven ⇒ upper < tolerance; the estimate lies within
        the bounds. The threshold is the e-Bonferroni one."""
        result = sequential_count(*_columns(rows), metrics=metrics, tolerance=tolerance)
        assert result.threshold == metrics / ALPHA
        if result.steps == 0:
            assert not result.failed
            assert not result.proven
            return
        assert result.failed is (result.e_value >= result.threshold)
        assert result.failed is (result.lower > 1.0)
        if result.proven:
            assert result.upper < tolerance
        assert result.lower <= result.estimate <= result.upper

    def test_fewer_than_min_steps_decide_nothing(self) -> None:
        """A burst in the canary's first steps is tempered by its own arm's dispersion and decides
        nothing though its untempered e-value is far past the line; with min_steps=5 even a
        real early regression waits for five informative steps, its e-value still reported."""
        ea, na = np.array([4.0, 6.0, 5.0]), np.full(3, 3000.0)
        eb, nb = np.array([40.0, 5.0, 4.0]), np.full(3, 3000.0)
        assert sequential_count(ea, na, eb, nb, temper=False).e_value >= THRESHOLD
        burst = sequential_count(ea, na, eb, nb)
        assert not burst.failed
        assert burst.dispersion > 4.0
        steady = np.array([15.0, 18.0, 16.0])
        gated = sequential_count(ea, na, steady, nb, min_steps=5)
        assert gated.e_value >= THRESHOLD
        assert not gated.failed
        assert gated.reason.startswith("undecided: 3 informative steps, fewer than 5; ")
        assert sequential_count(ea, na, steady, nb).failed

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
        ea, na, eb, nb = CountTraffic("200 req/s", 200.0, 200.0, 0.01).draw(rng, (40, LOOKS))
        first = []
        for s in range(40):
            args = (ea[s], na[s], eb[s], nb[s])
            results = {k: sequential_count(*(x[:k] for x in args)) for k in range(10, 61, 10)}
            assert not any(r.failed for r in results.values())
            proven = [k for k, r in results.items() if r.proven]
            first.append(proven[0] if proven else math.inf)
            for k in proven:
                assert results[k].upper < 1.2
                assert results[k].reason.startswith("non-inferior: rate ")
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
        ea, na, eb, nb = count_stream(14, steps=30, lam=20.0)
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
        ea, na, eb, nb = count_stream(15, steps=5)
        with pytest.raises(ValueError, match=match):
            sequential_count(ea, na, eb, nb, **kwargs)

    def test_arrays_of_different_lengths_are_refused(self) -> None:
        """Events and exposure must line up step by step."""
        with pytest.raises(ValueError, match=r"differ in length: \[2, 3\]"):
            sequential_count([1, 2], [10, 10], [1, 2, 3], [10, 10, 10])

    def test_a_regression_is_never_proven_non_inferior(self) -> None:
        """A 3× canary fails and is not proven, whatever the tolerance below 3."""
        ea, na, eb, nb = count_stream(13, steps=30, ratio=3.0, lam=5.0)
        for tolerance in (1.2, 2.0):
            result = sequential_count(ea, na, eb, nb, tolerance=tolerance)
            assert result.failed
            assert not result.proven
            assert result.lower > 1.0
            assert "regression" in result.reason
