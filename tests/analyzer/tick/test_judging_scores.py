"""analyzer.tick.judging.evaluate(): each metric's judgement, the score, the sequential
metrics and the evidence a tick records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analyzer.errors import InternalError
from analyzer.metricdata import CountData, MetricKind, SeriesData, SideName
from analyzer.model import JudgeName
from analyzer.tick.judging import evaluate, per_step_series
from analyzer.tick.sequential import MEAN_T_OPT
from judges.labels import Label
from judges.sequential.count import sequential_count
from judges.sequential.mean import sequential_mean
from support.fakes import MakeConfig, Traffic
from support.judging import (
    counts,
    healthy_latency,
    missing,
    sequential_config,
    series,
    traffic_window,
    window,
)
from support.queries import NAN


class TestMannWhitneyOnCounts:
    """For a count metric, Mann-Whitney judges the per-step ratio events/exposure."""

    def test_per_step_series_is_the_ratio(self) -> None:
        """events/exposure per step; a step without exposure is missing, not a division error."""
        data = counts(([1, 2, 0, 5], [100, 100, 0, 50]), ([0] * 4, [1] * 4))
        ratio = per_step_series(data, SideName.CANARY)
        np.testing.assert_allclose(ratio, [0.01, 0.02, NAN, 0.1])
        assert per_step_series(data, SideName.BASELINE).tolist() == [0.0] * 4

    def test_per_step_series_of_a_series_is_each_sides_values(self) -> None:
        """A series metric's per-step values are its own, taken from the side asked for."""
        data = series([0.3, 0.4], [0.1, 0.2])
        assert per_step_series(data, SideName.CANARY).tolist() == [0.3, 0.4]
        assert per_step_series(data, SideName.BASELINE).tolist() == [0.1, 0.2]

    def test_equal_rates_on_unequal_traffic_pass(self, make_config: MakeConfig) -> None:
        """Equal rates pass though a 5 % canary sees a twentieth of the events."""
        # A 5 % canary takes a twentieth of the traffic; judging raw events would call it Low.
        steps = 12
        rng = np.random.default_rng(11)
        base_events = rng.poisson(100, steps)
        canary_events = rng.poisson(5, steps)
        win = window(
            counts((canary_events, [500] * steps), (base_events, [10_000] * steps)),
            healthy_latency(steps),
        )
        ev = evaluate(make_config(), win, score_now=True)
        outcome = {m.name: m for m in ev.metrics}["error_rate"]
        assert outcome.label is Label.PASS
        assert outcome.details["canary_mean"] == pytest.approx(canary_events.mean() / 500)
        assert outcome.details["baseline_mean"] == pytest.approx(base_events.mean() / 10_000)
        assert outcome.details["canary_n"] == outcome.details["baseline_n"] == steps

    def test_a_higher_rate_is_high(self, make_config: MakeConfig) -> None:
        """Five times the baseline's error rate is High (and critical: ≥ critical_increase)."""
        config = make_config()
        bad = Traffic(error_rate={"baseline": 0.01, "canary": 0.05})
        ev = evaluate(config, traffic_window(config, bad), score_now=True)
        outcome = {m.name: m for m in ev.metrics}["error_rate"]
        assert outcome.label is Label.HIGH
        assert outcome.critical
        assert outcome.details["p_value"] < 0.02
        assert outcome.details["lower"] > 0


class TestScore:
    """Scoring happens only when asked; a failed critical metric forces 0."""

    def test_no_score_unless_asked(self, make_config: MakeConfig) -> None:
        """score_now=False leaves the metrics unjudged and the score None."""
        config = make_config()
        ev = evaluate(config, traffic_window(config, Traffic()), score_now=False)
        assert ev.score is None
        assert ev.metrics == ()

    def test_healthy_canary_scores_100(self, make_config: MakeConfig) -> None:
        """Both metrics Pass: every group scores 100."""
        config = make_config()
        ev = evaluate(config, traffic_window(config, Traffic()), score_now=True)
        assert ev.score is not None
        assert ev.score.score == 100.0
        assert [(m.name, m.label) for m in ev.metrics] == [
            ("error_rate", Label.PASS),
            ("latency_p99", Label.PASS),
        ]

    def test_non_critical_failure_costs_its_group_weight(self, make_config: MakeConfig) -> None:
        """p99 High (latency group, weight 40): the summary is the errors group's 60."""
        config = make_config()
        slow = Traffic(latency={"baseline": 0.2, "canary": 0.5})
        ev = evaluate(config, traffic_window(config, slow), score_now=True)
        assert ev.score is not None
        assert ev.score.score == 60.0
        assert {g.name: g.score for g in ev.score.groups} == {"errors": 100.0, "latency": 0.0}

    def test_critical_failure_forces_zero(self, make_config: MakeConfig) -> None:
        """The critical error rate failing makes the score 0 whatever the other groups say."""
        config = make_config()
        bad = Traffic(error_rate={"baseline": 0.01, "canary": 0.05})
        ev = evaluate(config, traffic_window(config, bad), score_now=True)
        assert ev.score is not None
        assert ev.score.score == 0.0
        assert ev.score.reason.startswith("critical metric error_rate failed")
        assert {g.name: g.score for g in ev.score.groups}["latency"] == 100.0

    def test_threshold_metric_is_scored(self, make_config: MakeConfig) -> None:
        """A threshold-judged metric is scored by its hard line over the whole window."""
        body = make_config().model_dump(mode="json", by_alias=True)
        ceiling = {
            "name": "p99_ceiling",
            "group": "latency",
            "kind": "series",
            "judge": "threshold",
            "threshold": {"max": 0.3},
            "query": body["metrics"][1]["query"],
        }
        config = make_config(metrics=[*body["metrics"], ceiling])
        slow = Traffic(latency={"baseline": 0.2, "canary": 0.4})
        ev = evaluate(config, traffic_window(config, slow), score_now=True)
        outcome = {m.name: m for m in ev.metrics}["p99_ceiling"]
        assert outcome.label is Label.HIGH
        assert outcome.details["canary"] == pytest.approx(0.4, rel=0.05)

    def test_record_is_json(self, make_config: MakeConfig) -> None:
        """The tick's evidence serialises as strict JSON (NaN becomes null)."""
        config = make_config()
        win = window(missing("error_rate", MetricKind.COUNT, "down", steps=8), healthy_latency(8))
        record = evaluate(config, win, score_now=True).record()
        text = json.dumps(record, allow_nan=False)
        assert json.loads(text)["kill_switch"][0]["canary"] is None
        assert record["score"]["groups"].keys() == {"errors", "latency"}


class TestSequential:
    """Each sequential metric is recomputed on every poll by the test its judge names."""

    def test_each_judge_runs_its_own_test(self, make_config: MakeConfig) -> None:
        """sequential-count runs the count test on events/exposure, sequential-mean the mean
        test on the values, both sharing α over the two metrics."""
        config = sequential_config(make_config)
        win = traffic_window(config, Traffic(error_rate={"baseline": 0.01, "canary": 0.05}))
        by_name = {s.name: s for s in evaluate(config, win, score_now=False).sequential}
        errors, latency = win.metrics["error_rate"], win.metrics["latency_p99"]
        assert isinstance(errors, CountData)
        assert isinstance(latency, SeriesData)
        expected_count = sequential_count(
            errors.baseline.events,
            errors.baseline.exposure,
            errors.canary.events,
            errors.canary.exposure,
            alpha=config.alpha,
            metrics=2,
            tolerance=1.2,
        )
        expected_mean = sequential_mean(
            latency.baseline.values,
            latency.canary.values,
            alpha=config.alpha,
            metrics=2,
            tolerance=0.025,
            t_opt=MEAN_T_OPT,  # the mean judge is tuned for that many steps at least
        )
        assert by_name["error_rate"].judge is JudgeName.SEQUENTIAL_COUNT
        assert by_name["error_rate"].result == expected_count
        assert by_name["latency_p99"].judge is JudgeName.SEQUENTIAL_MEAN
        assert by_name["latency_p99"].result == expected_mean

    def test_data_of_the_wrong_kind_is_an_internal_error(self, make_config: MakeConfig) -> None:
        """A count judge handed a series is a broken invariant, never judged as a mean."""
        config = sequential_config(make_config)
        win = window(series([0.2] * 5, [0.2] * 5, name="error_rate"), healthy_latency(5))
        with pytest.raises(InternalError, match="error_rate: sequential-count cannot judge series"):
            evaluate(config, win, score_now=False)


class TestRecord:
    """The evidence a tick stores keeps its v1 shape."""

    def test_judge_names_are_plain_strings(self, make_config: MakeConfig) -> None:
        """Judges are recorded as their config spelling, plain str (what the store writes)."""
        config = sequential_config(make_config)
        record = evaluate(config, traffic_window(config, Traffic()), score_now=True).record()
        judges = [m["judge"] for m in record["metrics"]] + [
            s["judge"] for s in record["sequential"]
        ]
        assert judges == ["sequential-count", "sequential-mean"] * 2
        assert all(type(j) is str for j in judges)
