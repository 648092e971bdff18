"""analyzer.configs.overlap: query ranges longer than the step, found per metric."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.configs.judgeconfig import JudgeConfig, parse_config
from analyzer.configs.overlap import overlap_warnings, overlaps, range_seconds, range_selectors
from support.configs import load

P99 = "histogram_quantile(0.99, sum by (le) (increase(latency_bucket{{${{selector}}}}[{range}])))"


def config(range_: str, *, step: str = "2s", **tune: Any) -> JudgeConfig:
    """latency-only's p99 metric at ``step`` with its query's range replaced."""
    body = load(
        "latency-only",
        metrics=["latency_p99"],
        step=step,
        queries={"latency_p99": P99.format(range=range_)},
        tune={"latency_p99": tune},
        analysis_interval="1m",
        lookback=None,
        warmup="0s",
    )
    return parse_config(body)


class TestRangeSelectors:
    """Every [...] outside string literals and comments."""

    def test_brackets_inside_strings_are_not_ranges(self) -> None:
        """A regex matcher with a character class is not a range selector."""
        query = "rate(x{path=~\"/a/[0-9]+\",b='[1m]'}[5m])"
        assert range_selectors(query) == ["5m"]

    def test_comments_are_skipped(self) -> None:
        """A PromQL comment may mention [1h]."""
        assert range_selectors("rate(x[30s]) # not [1h]\n") == ["30s"]

    def test_subquery_range_is_before_the_colon(self) -> None:
        """[10m:1m] is a 10-minute range."""
        seconds = range_seconds("10m:1m", step_s=60, window_s=600, variables={})
        assert seconds == 600.0

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [("1h30m", 5400.0), ("500ms", 0.5), ("90", 90.0), ("${step}", 2.0), ("$window", 60.0)],
    )
    def test_durations_numbers_and_placeholders(self, spec: str, expected: float) -> None:
        """PromQL durations, bare seconds, ${step} and ${window} are read."""
        assert range_seconds(spec, step_s=2, window_s=60, variables={}) == expected

    def test_a_variable_resolves_to_its_value(self) -> None:
        """${lookback} is the declared (or the canary's) value."""
        seconds = range_seconds("${lookback}", step_s=2, window_s=60, variables={"lookback": "30s"})
        assert seconds == 30.0

    def test_unreadable_ranges_are_not_judged(self) -> None:
        """A duration expression or a non-duration variable gives None, not a guess."""
        assert range_seconds("5m+1m", step_s=2, window_s=60, variables={}) is None
        assert range_seconds("${x}", step_s=2, window_s=60, variables={"x": "abc"}) is None


class TestOverlaps:
    """Which metrics overlap, and what the warning says."""

    def test_ten_seconds_at_two_overlaps_the_next_four(self) -> None:
        """increase(...[10s]) at a 2 s step: the warning names the metric and the overlap."""
        (warning,) = overlap_warnings(config("10s"))
        assert warning.startswith("latency_p99: metrics.0.query range [10s]")
        assert "each sample overlaps the next 4" in warning
        assert "dependence: adjust" in warning

    def test_a_range_of_step_does_not_overlap(self) -> None:
        """[${step}] and a range equal to the step are fine; so is a shorter one."""
        for range_ in ("${step}", "2s", "1s"):
            assert overlaps(config(range_)) == []

    def test_shipped_configs_do_not_overlap(self) -> None:
        """config/*.yaml use [${step}] throughout."""
        for name in ("http-golden-signals", "latency-only", "sequential-golden-signals"):
            assert overlaps(parse_config(load(name))) == []

    def test_adjusted_metric_says_so(self) -> None:
        """With dependence: adjust the warning says the test is widened for it."""
        (warning,) = overlap_warnings(config("10s", dependence="adjust"))
        assert "dependence: adjust widens the Mann-Whitney test" in warning

    def test_canary_variables_override_the_config(self) -> None:
        """A canary's value of a range variable is the one judged."""
        body = load(
            "latency-only",
            metrics=["latency_p99"],
            step="60s",
            queries={"latency_p99": P99.format(range="${range}")},
            variables={"range": "60s"},
        )
        cfg = parse_config(body)
        assert overlaps(cfg) == []
        (found,) = overlaps(cfg, {"range": "5m"})
        assert (found.spelt, found.range_s, found.overlapped) == ("[${range}]", 300.0, 4)

    def test_threshold_metrics_are_left_out(self) -> None:
        """A hard line on the latest window does not assume independent samples."""
        body = load(
            "latency-only",
            metrics=["latency_p99_ceiling"],
            step="2s",
            queries={"latency_p99_ceiling": P99.format(range="10s")},
            kill_switch=[],
        )
        assert overlaps(parse_config(body)) == []

    def test_count_metrics_name_the_role(self) -> None:
        """For a count metric the warning names events or exposure and the double counting."""
        body = load(
            "sequential-golden-signals",
            metrics=["error_rate"],
            step="60s",
            queries={
                "error_rate": {
                    "events": "sum(increase(errors{${selector}}[5m]))",
                    "exposure": "sum(increase(requests{${selector}}[${step}]))",
                }
            },
        )
        (warning,) = overlap_warnings(parse_config(body))
        assert warning.startswith("error_rate: metrics.0.query.events range [5m]")
        assert "counted in up to 5 steps" in warning
