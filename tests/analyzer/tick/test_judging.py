"""analyzer.tick.judging.evaluate() on what stops or overrides a judgement: windows without
usable data, and the kill-switch. (Judgements and the score: ``test_judging_scores.py``.)"""

from __future__ import annotations

import pytest

from analyzer.metricdata import MetricKind
from analyzer.model import Window
from analyzer.tick.judging import evaluate
from judges.labels import Label
from support.fakes import T0, MakeConfig, Traffic
from support.judging import (
    counts,
    healthy_latency,
    missing,
    series,
    traffic_window,
    window,
)
from support.queries import NAN, STEP


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
