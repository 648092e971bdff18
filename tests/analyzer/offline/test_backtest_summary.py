"""Backtest figures: the summary against ground truth, the Wilson interval, and the table."""

from __future__ import annotations

import pytest

from analyzer.offline.backtest import (
    BacktestOutcome,
    BacktestVerdict,
    format_summary,
    format_table,
    summarize,
    wilson_interval,
)
from analyzer.offline.recording import Truth


def outcome(
    verdict: str,
    step: int | None,
    *,
    regression: bool | None,
    onset: int | None = None,
    step_s: float = 60.0,
) -> BacktestOutcome:
    truth = (
        None
        if regression is None
        else Truth(
            regression=regression, metric="error_rate" if regression else None, onset_step=onset
        )
    )
    return BacktestOutcome(
        name="r",
        verdict=BacktestVerdict(verdict),
        step=step,
        reason="",
        truth=truth,
        step_s=step_s,
    )


class TestSummarize:
    def test_hand_checked_figures(self) -> None:
        """10 A/A runs with one rollback; 4 regressions: two detected after 2 and 5 minutes, one
        rolled back before its onset, one missed."""
        outcomes = [outcome("rollback", 30, regression=False)]
        outcomes += [outcome("promote", 59, regression=False)] * 8
        outcomes += [outcome("none", None, regression=False)]
        outcomes += [
            outcome("rollback", 12, regression=True, onset=10),
            outcome("rollback", 15, regression=True, onset=10),
            outcome("rollback", 4, regression=True, onset=10),
            outcome("inconclusive", 59, regression=True, onset=10),
            outcome("rollback", 3, regression=None),  # no truth: not counted
        ]
        s = summarize(outcomes)
        assert s is not None
        assert (s.null_runs, s.false_rollbacks, s.false_rollback_rate) == (10, 1, 0.1)
        assert s.false_rollback_ci is not None
        assert s.false_rollback_ci == pytest.approx((0.0179, 0.4042), abs=5e-5)
        assert (s.regressions, s.detected, s.premature, s.power) == (4, 2, 1, 0.5)
        assert s.median_minutes_to_detect == 3.5

    def test_minutes_follow_the_step_length(self) -> None:
        """At 30 s steps, 4 steps after onset is 2 minutes."""
        s = summarize([outcome("rollback", 14, regression=True, onset=10, step_s=30.0)])
        assert s is not None
        assert s.median_minutes_to_detect == 2.0
        assert (s.null_runs, s.false_rollback_rate, s.false_rollback_ci) == (0, None, None)

    def test_without_truth_there_is_no_summary(self) -> None:
        """Outcomes from recordings without truth give no summary."""
        assert summarize([outcome("rollback", 3, regression=None)]) is None
        assert summarize([]) is None

    def test_record_and_text(self) -> None:
        """The JSON figures and the three text lines carry the same numbers."""
        s = summarize(
            [
                outcome("rollback", 3, regression=False),
                outcome("promote", 9, regression=False),
                outcome("rollback", 13, regression=True, onset=10),
            ]
        )
        assert s is not None
        record = s.record()
        assert record["false_rollbacks"] == 1
        assert record["false_rollback_rate"] == 0.5
        assert record["false_rollback_ci95"] == pytest.approx([0.0945, 0.9055], abs=5e-5)
        assert (record["power"], record["median_minutes_to_detect"]) == (1.0, 3.0)
        assert format_summary(s).splitlines() == [
            "false rollbacks: 1 of 2 A/A runs (50.0 %, 95 % CI 9.5–90.5 %)",
            "power: 1 of 1 regressions detected (100.0 %); 0 rolled back before the onset",
            "median time to detect: 3 min",
        ]


class TestWilsonInterval:
    @pytest.mark.parametrize(
        ("successes", "trials", "lower", "upper"),
        [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ],
    )
    def test_newcombe_reference_values(
        self, successes: int, trials: int, lower: float, upper: float
    ) -> None:
        """Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (Wilson score, no correction)."""
        assert wilson_interval(successes, trials) == pytest.approx((lower, upper), abs=5e-5)

    def test_refuses_impossible_counts(self) -> None:
        """No trials, or more successes than trials, is a ValueError."""
        for successes, trials in ((0, 0), (3, 2), (-1, 5)):
            with pytest.raises(ValueError, match="successes"):
                wilson_interval(successes, trials)


class TestFormatTable:
    def test_columns_align(self) -> None:
        """Columns line up, minutes follow the step length, undecided runs show '-'."""
        table = format_table(
            [
                BacktestOutcome(
                    name="long-name-0001",
                    verdict=BacktestVerdict.ROLLBACK,
                    step=12,
                    reason="why",
                    step_s=30.0,
                ),
                BacktestOutcome(name="b", verdict=BacktestVerdict.NONE, step=None, reason="none"),
            ]
        )
        assert table.splitlines() == [
            "name            verdict   step  minute  reason",
            "long-name-0001  rollback    12       6  why",
            "b               none         -       -  none",
        ]
