"""judges.scorer: Kayenta's WeightedSumScorer (DESIGN.md §4).

Expected scores are worked by hand from the formula in the scorer's docstring and DESIGN.md §4:
group score = 100·Pass / (Pass + High + Low + NodataFailMetric); summary = Σ score·weight/100,
rounded half-up to 2 decimals; a failed critical metric or ≥ 50 % Nodata forces 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from judges.labels import Label, ScoreClass
from judges.scorer import ScoredMetric, ScoreResult, classify_score, score_groups


def _m(
    name: str, label: Label, *groups: str, critical: bool = False, muted: bool = False
) -> ScoredMetric:
    return ScoredMetric(
        name=name,
        label=label,
        groups=groups or ("g",),
        critical=critical,
        muted=muted,
        reason=f"{name} is {label}",
    )


def _score(
    results: Sequence[ScoredMetric], weights: Mapping[str, float] | None = None
) -> ScoreResult:
    return score_groups(results, weights or {}, pass_threshold=75, marginal_threshold=50)


class TestGroupScores:
    """Per-group scores and counts."""

    def test_share_of_passes(self) -> None:
        """3 Pass and 1 High: 100·3/4 = 75."""
        result = _score(
            [_m("a", Label.PASS), _m("b", Label.PASS), _m("c", Label.PASS), _m("d", Label.HIGH)]
        )
        (group,) = result.groups
        assert group.score == 75.0
        assert dict(group.counts) == {"Pass": 3, "High": 1}

    def test_denominator_counts_low_and_nodata_fail_metric(self) -> None:
        """Low and NodataFailMetric count against the group: 1 of 3 passes → 33.33…"""
        result = _score(
            [_m("a", Label.PASS), _m("b", Label.LOW), _m("c", Label.NODATA_FAIL_METRIC)]
        )
        assert result.groups[0].score == pytest.approx(100 / 3)

    def test_nodata_and_error_are_left_out(self) -> None:
        """Nodata and Error do not count in the group's denominator: 1 Pass + 1 Error → 100."""
        result = _score([_m("a", Label.PASS), _m("b", Label.ERROR), _m("c", Label.PASS)])
        assert result.groups[0].score == 100.0

    def test_metric_in_two_groups_counts_in_both(self) -> None:
        """A metric listed in two groups is scored in each."""
        result = _score([_m("a", Label.HIGH, "x", "y"), _m("b", Label.PASS, "x")])
        scores = {g.name: g.score for g in result.groups}
        assert scores == {"x": 50.0, "y": 0.0}

    def test_groups_keep_first_appearance_order(self) -> None:
        """Groups are reported in the order their first metric appears."""
        result = _score(
            [_m("a", Label.PASS, "z"), _m("b", Label.PASS, "a"), _m("c", Label.PASS, "z")]
        )
        assert [g.name for g in result.groups] == ["z", "a"]


class TestSummary:
    """The weighted summary score, its rounding and what forces it to 0."""

    def test_weighted_sum(self) -> None:
        """errors 50 × 0.7 + latency 100 × 0.3 = 65."""
        results = [
            _m("e1", Label.PASS, "errors"),
            _m("e2", Label.HIGH, "errors"),
            _m("l", Label.PASS, "latency"),
        ]
        result = _score(results, {"errors": 70, "latency": 30})
        assert result.score == 65.0
        assert result.classification is ScoreClass.MARGINAL
        assert result.reason == ""

    def test_unweighted_groups_share_the_rest(self) -> None:
        """Weights {a: 60}: b and c get (100 − 60)/2 = 20 each → 100·0.6 + 0·0.2 + 50·0.2 = 70."""
        results = [
            _m("a1", Label.PASS, "a"),
            _m("b1", Label.HIGH, "b"),
            _m("c1", Label.PASS, "c"),
            _m("c2", Label.LOW, "c"),
        ]
        assert _score(results, {"a": 60}).score == 70.0

    def test_no_weights_means_equal_shares(self) -> None:
        """Without weights two groups get 50 each: 100·0.5 + 0·0.5 = 50."""
        assert _score([_m("a", Label.PASS, "a"), _m("b", Label.HIGH, "b")]).score == 50.0

    def test_rounds_half_up_to_two_decimals(self) -> None:
        """12.5 × 1/100 = 0.125 rounds half-up to 0.13 (round() would give 0.12)."""
        results = [_m("p", Label.PASS, "a")] + [_m(f"h{i}", Label.HIGH, "a") for i in range(7)]
        results.append(_m("z", Label.HIGH, "b"))
        result = _score(results, {"a": 1, "b": 99})
        assert result.groups[0].score == 12.5
        assert round(0.125, 2) == 0.12  # the rounding the scorer must not use
        assert result.score == 0.13

    def test_rounds_thirds(self) -> None:
        """One group at 2 of 3 passes: 66.666… → 66.67."""
        results = [_m("a", Label.PASS), _m("b", Label.PASS), _m("c", Label.HIGH)]
        assert _score(results).score == 66.67

    def test_failed_critical_metric_forces_zero(self) -> None:
        """A critical metric that is not Pass forces 0; the reason names it."""
        results = [_m("a", Label.PASS), _m("b", Label.PASS), _m("lat", Label.HIGH, critical=True)]
        result = _score(results)
        assert result.score == 0.0
        assert result.classification is ScoreClass.FAIL
        assert result.reason.startswith("critical metric lat failed: lat is High")
        assert not result.forced_by_no_data

    def test_passing_critical_metric_does_not_force(self) -> None:
        """A critical metric that passes scores like any other."""
        assert _score([_m("a", Label.PASS, critical=True), _m("b", Label.PASS)]).score == 100.0

    def test_critical_nodata_forces_zero(self) -> None:
        """A critical metric without data is a failed critical metric."""
        results = [_m("a", Label.PASS), _m("b", Label.PASS), _m("c", Label.NODATA, critical=True)]
        result = _score(results)
        assert result.score == 0.0
        assert result.forced_by_no_data

    def test_half_nodata_forces_zero(self) -> None:
        """2 of 4 metrics Nodata (50 %, the threshold itself) forces 0 with a reason."""
        results = [
            _m("a", Label.PASS),
            _m("b", Label.PASS),
            _m("c", Label.NODATA),
            _m("d", Label.NODATA),
        ]
        result = _score(results)
        assert result.score == 0.0
        assert "2 of 4" in result.reason
        assert result.forced_by_no_data

    def test_under_half_nodata_scores(self) -> None:
        """1 of 3 Nodata is under 50 %: the other metrics are scored."""
        results = [_m("a", Label.PASS), _m("b", Label.PASS), _m("c", Label.NODATA)]
        assert _score(results).score == 100.0

    def test_nodata_only_group_counts_one_hundred(self) -> None:
        """A group with only Nodata counts 100 in the summary: 100·0.5 + 50·0.5 = 75 (not 25)."""
        results = [_m("n", Label.NODATA, "x"), _m("p", Label.PASS, "y"), _m("h", Label.HIGH, "y")]
        result = _score(results, {"x": 50, "y": 50})
        assert result.groups[0].no_data
        assert result.score == 75.0

    def test_no_metrics_scores_zero(self) -> None:
        """Nothing to score is 0 with a reason."""
        result = _score([])
        assert (result.score, result.reason) == (0.0, "no metric was scored")


class TestMuted:
    """Muted metrics are reported but not scored."""

    def test_muted_high_is_not_counted(self) -> None:
        """A muted High leaves the score at 100."""
        assert _score([_m("a", Label.PASS), _m("b", Label.HIGH, muted=True)]).score == 100.0

    def test_muted_critical_failure_does_not_force_zero(self) -> None:
        """A muted critical failure does not fail the canary."""
        results = [_m("a", Label.PASS), _m("b", Label.HIGH, critical=True, muted=True)]
        assert _score(results).score == 100.0

    def test_muted_nodata_is_not_in_the_share(self) -> None:
        """Muted Nodata does not count towards the 50 % Nodata rule."""
        results = [
            _m("a", Label.PASS),
            _m("b", Label.NODATA, muted=True),
            _m("c", Label.NODATA, muted=True),
        ]
        assert _score(results).score == 100.0

    def test_only_muted_scores_zero(self) -> None:
        """When every metric is muted nothing is scored."""
        assert _score([_m("a", Label.PASS, muted=True)]).reason == "no metric was scored"


class TestClassifyScore:
    """Score classification against {pass, marginal}."""

    @pytest.mark.parametrize(
        ("score", "expected"),
        [
            (100.0, ScoreClass.PASS),
            (75.0, ScoreClass.PASS),
            (74.99, ScoreClass.MARGINAL),
            (50.0, ScoreClass.MARGINAL),
            (49.99, ScoreClass.FAIL),
            (0.0, ScoreClass.FAIL),
        ],
    )
    def test_thresholds_are_inclusive(self, score: float, expected: ScoreClass) -> None:
        """Pass at ≥ pass, Marginal at ≥ marginal, else Fail."""
        assert classify_score(score, pass_threshold=75, marginal_threshold=50) is expected

    def test_summary_uses_given_thresholds(self) -> None:
        """score_groups classifies with the thresholds it is given."""
        results = [_m("a", Label.PASS), _m("b", Label.HIGH)]
        strict = score_groups(results, {}, pass_threshold=90, marginal_threshold=60)
        lenient = score_groups(results, {}, pass_threshold=50, marginal_threshold=10)
        assert (strict.classification, lenient.classification) == (ScoreClass.FAIL, ScoreClass.PASS)
