"""analyzer.tick.judging.evaluate(): a window in; the kill-switch, each metric's judgement and
the score out."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.errors import InternalError
from analyzer.metricdata import (
    CountData,
    CountSide,
    MetricData,
    MetricKind,
    SeriesData,
    SeriesSide,
    SideName,
    missing_metric,
)
from analyzer.model import JudgeName, Side, Window
from analyzer.sources.protocol import FetchRequest, MetricQuery
from analyzer.tick.judging import evaluate, per_step_series
from judges.labels import Label
from judges.sequential.count import sequential_count
from judges.sequential.mean import sequential_mean
from support.fakes import T0, MakeConfig, Traffic

STEP = 60.0
NAN = float("nan")


def window(*metrics: MetricData) -> Window:
    """A window as long as the metrics' arrays, on the 60 s grid from T0."""
    steps = max((a.size for m in metrics for a in m.canary.arrays), default=1)
    named = {m.name: m for m in metrics}
    return Window(start=T0, end=T0 + (steps - 1) * STEP, step_s=STEP, metrics=named)


def arr(values: Any) -> np.ndarray:
    """Float64 array."""
    return np.asarray(values, dtype=np.float64)


def counts(
    canary: tuple[Any, Any], baseline: tuple[Any, Any], *, name: str = "error_rate", error: str = ""
) -> MetricData:
    """A count metric from (events, exposure) per side."""
    return CountData(
        name=name,
        canary=CountSide(events=arr(canary[0]), exposure=arr(canary[1])),
        baseline=CountSide(events=arr(baseline[0]), exposure=arr(baseline[1])),
        error=error,
    )


def series(canary: Any, baseline: Any, *, name: str = "latency_p99", error: str = "") -> MetricData:
    """A series metric from the values per side."""
    return SeriesData(
        name=name,
        canary=SeriesSide(values=arr(canary)),
        baseline=SeriesSide(values=arr(baseline)),
        error=error,
    )


def missing(name: str, kind: MetricKind, error: str, steps: int = 5) -> MetricData:
    """A metric the source could not fetch: all NaN, with the cause."""
    return missing_metric(name, kind, steps, error)


def traffic_window(config: JudgeConfig, traffic: Traffic, steps: int = 11) -> Window:
    """The window a FakeSource with ``traffic`` returns for ``steps`` steps of every metric."""
    queries = tuple(
        MetricQuery(name=m.name, kind=m.kind, templates=m.templates()) for m in config.metrics
    )
    request = FetchRequest(
        canary_id="c-1",
        metrics=queries,
        baseline=Side(labels={"deployment": "base"}),
        canary=Side(labels={"deployment": "canary"}),
        start=T0,
        end=T0 + (steps - 1) * STEP,
        step_s=STEP,
    )
    return traffic(request)


def healthy_latency(steps: int) -> MetricData:
    """A latency metric where both sides agree."""
    rng = np.random.default_rng(7)
    return series(0.2 + 0.01 * rng.standard_normal(steps), 0.2 + 0.01 * rng.standard_normal(steps))


class TestNoData:
    """Windows without usable data: verdict none with the causes, never a judgement."""

    def test_every_metric_failing_is_no_data_with_the_causes(self, make_config: MakeConfig) -> None:
        """Each metric's error is reported, sorted, and nothing is judged."""
        win = window(
            missing("error_rate", MetricKind.COUNT, "error_rate: HTTP 503 from Prometheus"),
            missing("latency_p99", MetricKind.SERIES, "latency_p99: timed out after 10s"),
        )
        ev = evaluate(make_config(), win, score_now=True)
        assert ev.no_data
        assert ev.no_data_reason == (
            "error_rate: HTTP 503 from Prometheus; latency_p99: timed out after 10s"
        )
        assert (ev.kill, ev.metrics, ev.score, ev.tripped) == ((), (), None, ())

    def test_all_nan_without_error_names_each_metric(self, make_config: MakeConfig) -> None:
        """An empty result (NaN everywhere, no error) still says which metric had nothing."""
        win = window(
            missing("error_rate", MetricKind.COUNT, ""),
            missing("latency_p99", MetricKind.SERIES, ""),
        )
        ev = evaluate(make_config(), win, score_now=False)
        assert ev.no_data
        assert ev.no_data_reason == "error_rate: no data; latency_p99: no data"

    def test_one_side_empty_is_no_data(self, make_config: MakeConfig) -> None:
        """A metric is usable only when both sides have some data."""
        win = window(counts(([NAN] * 5, [NAN] * 5), ([1] * 5, [100] * 5)))
        assert evaluate(make_config(), win, score_now=True).no_data

    def test_no_metrics_at_all(self, make_config: MakeConfig) -> None:
        """A window without metrics is no data too."""
        win = Window(start=T0, end=T0, step_s=STEP, metrics={})
        ev = evaluate(make_config(), win, score_now=True)
        assert (ev.no_data, ev.no_data_reason) == (True, "no metrics")

    def test_one_missing_metric_is_judged_nodata(self, make_config: MakeConfig) -> None:
        """With some data, the missing metric is labelled Nodata with its cause."""
        win = window(
            missing("error_rate", MetricKind.COUNT, "error_rate: connection refused", steps=8),
            healthy_latency(8),
        )
        ev = evaluate(make_config(), win, score_now=True)
        assert not ev.no_data
        outcome = {m.name: m for m in ev.metrics}["error_rate"]
        assert outcome.label is Label.NODATA
        assert outcome.reason == "error_rate: connection refused"
        kill = ev.kill[0]
        assert (kill.label, kill.reason) == (Label.NODATA, "error_rate: connection refused")
        assert ev.tripped == ()


class TestKillSwitch:
    """Kill-switch rules judge the trailing window of each rule, on every poll."""

    def test_count_max_trips_on_the_trailing_interval(self, make_config: MakeConfig) -> None:
        """A burst of errors in the last interval (5 steps) trips max 0.2."""
        events = [1] * 15 + [400] * 5
        win = window(counts((events, [1000] * 20), ([10] * 20, [1000] * 20)), healthy_latency(20))
        ev = evaluate(make_config(), win, score_now=False)
        assert [k.label for k in ev.tripped] == [Label.HIGH]
        assert "max 0.2" in ev.tripped[0].reason
        assert ev.tripped[0].canary == pytest.approx(0.4)

    def test_an_old_burst_outside_the_trailing_window_does_not_trip(
        self, make_config: MakeConfig
    ) -> None:
        """Errors that stopped more than one interval ago no longer count."""
        events = [900] * 15 + [1] * 5
        win = window(counts((events, [1000] * 20), ([10] * 20, [1000] * 20)), healthy_latency(20))
        ev = evaluate(make_config(), win, score_now=False)
        assert ev.tripped == ()
        assert ev.kill[0].label is Label.PASS

    def test_rule_window_overrides_the_interval(self, make_config: MakeConfig) -> None:
        """window: 2m looks at the last two steps only."""
        rule = {"metric": "error_rate", "max": 0.2, "min_exposure": 200, "window": "2m"}
        config = make_config(kill_switch=[rule])
        burst_3_ago = [1] * 17 + [900, 1, 1]
        win = window(counts((burst_3_ago, [1000] * 20), ([10] * 20, [1000] * 20)))
        assert evaluate(config, win, score_now=False).tripped == ()
        burst_now = [1] * 18 + [900, 900]
        win = window(counts((burst_now, [1000] * 20), ([10] * 20, [1000] * 20)))
        assert len(evaluate(config, win, score_now=False).tripped) == 1

    def test_min_exposure_guard_gives_nodata(self, make_config: MakeConfig) -> None:
        """All requests failing, but only 150 of them in the window (< 200): Nodata, no trip."""
        win = window(counts(([30] * 5, [30] * 5), ([1] * 5, [1000] * 5)), healthy_latency(5))
        ev = evaluate(make_config(), win, score_now=False)
        assert ev.kill[0].label is Label.NODATA
        assert "min_exposure 200" in ev.kill[0].reason
        assert ev.tripped == ()

    @pytest.mark.parametrize(
        ("canary_events", "tripped"),
        [(30, True), (21, True), (15, False), (10, False)],
    )
    def test_count_max_ratio(
        self, make_config: MakeConfig, canary_events: int, tripped: bool
    ) -> None:
        """max_ratio 2: canary rate over twice the baseline's (1 %) trips."""
        rule = {"metric": "error_rate", "max_ratio": 2.0, "min_exposure": 200}
        config = make_config(kill_switch=[rule])
        win = window(counts(([canary_events] * 5, [1000] * 5), ([10] * 5, [1000] * 5)))
        ev = evaluate(config, win, score_now=False)
        assert bool(ev.tripped) is tripped
        if tripped:
            assert "max_ratio 2" in ev.tripped[0].reason

    def test_max_ratio_with_too_little_exposure_is_nodata(self, make_config: MakeConfig) -> None:
        """The min_exposure guard applies to ratio rules as well."""
        rule = {"metric": "error_rate", "max_ratio": 2.0, "min_exposure": 200}
        config = make_config(kill_switch=[rule])
        win = window(counts(([10] * 5, [20] * 5), ([1] * 5, [1000] * 5)))
        ev = evaluate(config, win, score_now=False)
        assert ev.kill[0].label is Label.NODATA

    @pytest.mark.parametrize(("canary_level", "tripped"), [(0.32, True), (0.22, False)])
    def test_series_max_increase(
        self, make_config: MakeConfig, canary_level: float, tripped: bool
    ) -> None:
        """max_increase 0.05 s on p99: the trailing canary mean minus the baseline mean."""
        rule = {"metric": "latency_p99", "max_increase": 0.05}
        config = make_config(kill_switch=[rule])
        canary = [0.2] * 10 + [canary_level] * 5
        win = window(
            series(canary, [0.2] * 15), counts(([1] * 15, [100] * 15), ([1] * 15, [100] * 15))
        )
        ev = evaluate(config, win, score_now=False)
        assert bool(ev.tripped) is tripped
        assert ev.kill[0].canary == pytest.approx(canary_level)
        if tripped:
            assert "max_increase 0.05" in ev.tripped[0].reason

    def test_kill_switch_is_checked_without_a_score(self, make_config: MakeConfig) -> None:
        """Between intervals the kill-switch is evaluated and nothing else."""
        ev = evaluate(make_config(), traffic_window(make_config(), Traffic()), score_now=False)
        assert len(ev.kill) == 1
        assert (ev.metrics, ev.score) == ((), None)


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


def sequential_config(make_config: MakeConfig) -> JudgeConfig:
    """The base config with errors judged by sequential-count and p99 by sequential-mean."""
    body = make_config().model_dump(mode="json", by_alias=True)
    errors, latency = body["metrics"]
    errors |= {"judge": "sequential-count", "tolerance": 1.2}
    latency |= {"judge": "sequential-mean", "tolerance": 0.025}
    return make_config(metrics=[errors, latency])


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
            t_opt=10,
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
