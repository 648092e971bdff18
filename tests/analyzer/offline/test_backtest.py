"""Backtests: recordings replayed through the daemon's lifecycle, the replay source, the summary
figures, and the ``canaryd backtest`` command."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analyzer.cli import main
from analyzer.configs.judgeconfig import JudgeConfig, load_config, parse_config
from analyzer.demo.simulator import ERROR_RATIO_QUERY, LATENCY_P99_QUERY
from analyzer.errors import InvalidInput
from analyzer.metricdata import CountData, CountSide, MetricKind, SeriesData, SeriesSide
from analyzer.model import Canary, Mode, Phase, Side, Stage
from analyzer.offline.backtest import (
    BacktestOutcome,
    BacktestVerdict,
    backtest,
    format_summary,
    format_table,
    summarize,
    wilson_interval,
)
from analyzer.offline.recording import Recording, Truth, dump_recording, load_recording
from analyzer.sources.protocol import FetchRequest, MetricQuery
from analyzer.sources.replay import ReplaySource
from analyzer.tick.lifecycle import window_bounds
from analyzer.tick.scheduler import Scheduler
from support.paths import ROOT

FIXTURES = ROOT / "fixtures" / "recordings"
SEQUENTIAL = ROOT / "config" / "sequential-golden-signals.yaml"
CANARYD = Path(sys.executable).parent / "canaryd"
T0 = 1_767_225_600.0
KAYENTA_STYLE: dict[str, Any] = {
    "name": "kayenta-golden",
    "step": "60s",
    "analysis_interval": "10m",
    "warmup": "2m",
    "groups": {"errors": 70, "latency": 30},
    "metrics": [
        {
            "name": "error_rate",
            "group": "errors",
            "kind": "count",
            "judge": "mann-whitney",
            "direction": "increase",
            "critical": True,
            "query": ERROR_RATIO_QUERY,
            "effect_size": {"allowed_increase": 1.2, "critical_increase": 2.0},
        },
        {
            "name": "latency_p99",
            "group": "latency",
            "kind": "series",
            "judge": "mann-whitney",
            "direction": "increase",
            "query": LATENCY_P99_QUERY,
            "effect_size": {"allowed_increase": 1.1, "critical_increase": 1.5},
        },
    ],
}
"""Kayenta's way on the same data: Mann-Whitney on the per-step error ratio and on p99."""


def fixture(name: str) -> Recording:
    return load_recording(FIXTURES / f"{name}.json")


def sequential() -> JudgeConfig:
    return load_config(SEQUENTIAL)


def kayenta_style(**overrides: Any) -> JudgeConfig:
    return parse_config({**copy.deepcopy(KAYENTA_STYLE), **overrides})


def recording(
    steps: int,
    *,
    base_events: float = 10.0,
    canary_events: float = 10.0,
    exposure: float = 5000.0,
    latency: float = 0.24,
    canary_latency: float | None = None,
    step_s: float = 60.0,
    truth: Truth | None = None,
    name: str = "synthetic",
) -> Recording:
    """A steady recording: constant counts and a latency with a little deterministic wobble."""
    wobble = 0.01 * np.sin(np.arange(steps, dtype=np.float64))
    errors = CountData(
        name="error_rate",
        baseline=CountSide(events=np.full(steps, base_events), exposure=np.full(steps, exposure)),
        canary=CountSide(events=np.full(steps, canary_events), exposure=np.full(steps, exposure)),
    )
    p99 = SeriesData(
        name="latency_p99",
        baseline=SeriesSide(values=latency + wobble),
        canary=SeriesSide(values=(canary_latency or latency) - wobble),
    )
    return Recording(
        name=name,
        start=T0,
        step_s=step_s,
        steps=steps,
        metrics={"error_rate": errors, "latency_p99": p99},
        truth=truth,
    )


def canary(*, analysis_started_at: float | None) -> Canary:
    return Canary(
        id="c",
        name="c",
        service="s",
        config_name="x",
        config_hash="h",
        baseline=Side(labels={"d": "b"}),
        canary=Side(labels={"d": "c"}),
        stages=(Stage(weight=100, duration_s=600),),
        webhook_url=None,
        mode=Mode.DRY_RUN,
        created_at=T0,
        phase=Phase.RUNNING,
        stage_started_at=T0,
        analysis_started_at=analysis_started_at,
    )


def request(start: float, end: float, *metrics: MetricQuery, step_s: float = 60.0) -> FetchRequest:
    return FetchRequest(
        canary_id="c",
        metrics=metrics
        or (MetricQuery(name="error_rate", kind=MetricKind.COUNT, templates=ERROR_RATIO_QUERY),),
        baseline=Side(labels={"d": "b"}),
        canary=Side(labels={"d": "c"}),
        start=start,
        end=end,
        step_s=step_s,
    )


class TestWindowBounds:
    @pytest.mark.parametrize("lookback", [None, "5m"])
    @pytest.mark.parametrize("offset_s", [0.0, 60.0, 61.5, 599.0, 1800.0])
    def test_same_as_the_scheduler(self, lookback: str | None, offset_s: float) -> None:
        """The backtest's window is the scheduler's, growing or sliding, on or off the grid."""
        config = kayenta_style(lookback=lookback)
        scheduler = Scheduler.__new__(Scheduler)  # request() reads no instance state
        for started in (None, T0, T0 + 120.0):
            c = canary(analysis_started_at=started)
            now = T0 + 120.0 + offset_s
            fetched = scheduler.request(c, config, now)
            assert window_bounds(c, config, now) == (fetched.start, fetched.end)


class TestReplaySource:
    def test_maps_the_window_onto_recorded_steps_by_time(self) -> None:
        """A window from step 3 to step 6 reads recorded steps 3..6."""
        rec = fixture("err-3x-0001")
        window = ReplaySource(rec).window(request(rec.time(3), rec.time(6)))
        data = window.metrics["error_rate"]
        np.testing.assert_array_equal(
            data.canary.events, rec.metrics["error_rate"].canary.events[3:7]
        )
        assert (window.start, window.end, window.steps, data.error) == (
            rec.time(3),
            rec.time(6),
            4,
            "",
        )

    def test_missing_and_outside_steps_are_nan(self) -> None:
        """Null steps and steps before or after the recording come back NaN."""
        rec = fixture("aa-0001")  # baseline errors are null at steps 7 and 8
        window = ReplaySource(rec).window(request(rec.time(-2), rec.time(9)))
        events = window.metrics["error_rate"].baseline.events
        assert np.isnan(events[[0, 1, 9, 10]]).all()
        assert np.isfinite(events[[2, 8, 11]]).all()
        tail = ReplaySource(rec).window(request(rec.time(58), rec.time(61)))
        assert np.isnan(tail.metrics["error_rate"].canary.events[2:]).all()

    def test_unknown_metric_is_an_error_with_nan(self) -> None:
        """A metric the recording lacks comes back all-NaN with an error naming it."""
        rec = fixture("aa-0001")
        cpu = MetricQuery(name="cpu", kind=MetricKind.SERIES, templates={"query": "x"})
        data = ReplaySource(rec).window(request(rec.time(0), rec.time(4), cpu)).metrics["cpu"]
        assert "has no metric 'cpu'" in data.error
        assert np.isnan(data.baseline.values).all()
        assert np.isnan(data.canary.values).all()

    def test_other_kind_or_step_is_an_error(self) -> None:
        """A metric asked for as another kind, or at another step length, is refused as data."""
        rec = fixture("aa-0001")
        as_series = MetricQuery(name="error_rate", kind=MetricKind.SERIES, templates={"query": "x"})
        data = ReplaySource(rec).window(request(T0, T0 + 240, as_series)).metrics["error_rate"]
        assert "as count, not series" in data.error
        assert np.isnan(data.canary.values).all()
        half = ReplaySource(rec).window(request(T0, T0 + 240, step_s=30.0))
        assert "cannot be replayed at 30s steps" in half.metrics["error_rate"].error

    def test_rebase_moves_the_recording_in_time(self) -> None:
        """With rebase, the recording's first step is at the given time."""
        rec = fixture("aa-0001")
        later = T0 + 86_400.0
        window = ReplaySource(rec, rebase=later).window(request(later, later + 120))
        np.testing.assert_array_equal(
            window.metrics["error_rate"].canary.exposure,
            rec.metrics["error_rate"].canary.exposure[:3],
        )

    async def test_forget_changes_nothing(self) -> None:
        """The recording is shared and never changed: a forgotten canary reads the same data."""
        source = ReplaySource(fixture("aa-0001"))
        req = request(T0, T0 + 300)
        before = await source.fetch(req)
        source.forget(req.canary_id)
        after = await source.fetch(req)
        np.testing.assert_array_equal(
            after.metrics["error_rate"].canary.events, before.metrics["error_rate"].canary.events
        )
        assert after.metrics["error_rate"].error == before.metrics["error_rate"].error == ""

    async def test_fetch_is_the_window(self) -> None:
        """The async MetricSource face returns the same window."""
        source = ReplaySource(fixture("aa-0001"))
        req = request(T0, T0 + 300)
        fetched = await source.fetch(req)
        np.testing.assert_array_equal(
            fetched.metrics["error_rate"].baseline.events,
            source.window(req).metrics["error_rate"].baseline.events,
        )
        await source.close()


def _assert_detected(outcome: BacktestOutcome) -> None:
    assert outcome.verdict is BacktestVerdict.ROLLBACK, outcome
    assert outcome.truth is not None
    assert outcome.truth.onset_step is not None
    assert outcome.step is not None
    assert outcome.step >= outcome.truth.onset_step, outcome


class TestBacktest:
    @pytest.mark.parametrize("name", ["err-3x-0001", "zero-baseline-0001", "latency-0001"])
    def test_sequential_config_rolls_back_regressions_after_onset(self, name: str) -> None:
        """Each injected regression is rolled back, at or after its onset step."""
        outcome = backtest(sequential(), fixture(name))
        _assert_detected(outcome)
        assert outcome.truth is not None
        assert outcome.truth.metric is not None
        assert outcome.reason.startswith(outcome.truth.metric)

    def test_sequential_config_promotes_the_aa_pair_at_the_stage_end(self) -> None:
        """A/A: no rollback; the one stage ends on the last recorded step and promotes."""
        outcome = backtest(sequential(), fixture("aa-0001"))
        assert (outcome.verdict, outcome.step) == (BacktestVerdict.PROMOTE, 59)
        assert outcome.reason.startswith("score 100")
        assert outcome.minute == 59.0

    def test_kayenta_style_config_runs_on_the_same_recordings(self) -> None:
        """Mann-Whitney on the per-step error ratio: A/A promotes, the error regressions roll
        back after onset, and every recording gets a verdict."""
        config = kayenta_style()
        outcomes = {
            n: backtest(config, fixture(n))
            for n in ("aa-0001", "err-3x-0001", "zero-baseline-0001", "latency-0001")
        }
        assert outcomes["aa-0001"].verdict is BacktestVerdict.PROMOTE
        _assert_detected(outcomes["err-3x-0001"])
        _assert_detected(outcomes["zero-baseline-0001"])
        assert "error_rate failed" in outcomes["err-3x-0001"].reason
        assert "canary higher" in outcomes["err-3x-0001"].reason
        assert outcomes["latency-0001"].verdict in set(BacktestVerdict)

    def test_decisions_fall_on_interval_boundaries_for_kayenta_style(self) -> None:
        """Scored judgements happen at analysis start + k·interval (warm-up 2 steps, 10 each)."""
        outcome = backtest(kayenta_style(), fixture("err-3x-0001"))
        assert outcome.step is not None
        assert (outcome.step - 2) % 10 == 0

    def test_stages_step_and_then_promote(self) -> None:
        """Two 20-minute stages after a 2-minute warm-up: step at 22, promote at step 42."""
        stages = [Stage(weight=10, duration_s=1200), Stage(weight=100, duration_s=1200)]
        outcome = backtest(sequential(), fixture("aa-0001"), stages=stages)
        assert (outcome.verdict, outcome.step) == (BacktestVerdict.PROMOTE, 42)

    def test_no_decision_within_the_recording_is_none(self) -> None:
        """A stage longer than the recording ends without a verdict: none, step None."""
        outcome = backtest(
            sequential(), fixture("aa-0001"), stages=[Stage(weight=5, duration_s=7200)]
        )
        assert (outcome.verdict, outcome.step, outcome.minute) == (BacktestVerdict.NONE, None, None)
        assert outcome.reason.startswith("no decision in 60 steps; last: ")

    def test_warmup_longer_than_the_recording_is_none(self) -> None:
        """A recording that ends during warm-up decides nothing."""
        outcome = backtest(kayenta_style(warmup="2h"), fixture("aa-0001"))
        assert outcome.verdict is BacktestVerdict.NONE
        assert "warming up" in outcome.reason

    def test_inconclusive_pauses_the_run(self) -> None:
        """A score between marginal and pass at the stage end is inconclusive (paused): p99 up
        30 % fails the latency group (30 %), the errors group (70 %) passes."""
        outcome = backtest(kayenta_style(), recording(20, canary_latency=0.24 * 1.3))
        assert (outcome.verdict, outcome.step) == (BacktestVerdict.INCONCLUSIVE, 19)
        assert outcome.reason.startswith("inconclusive, paused for a human")

    def test_no_data_holds_until_the_stage_deadline(self) -> None:
        """Without any data the canary holds (never a rollback by itself), then is inconclusive."""
        rec = recording(15)
        for data in rec.metrics.values():
            for values in (*data.baseline.arrays, *data.canary.arrays):
                values[:] = np.nan
        outcome = backtest(kayenta_style(), rec)
        assert (outcome.verdict, outcome.step) == (BacktestVerdict.INCONCLUSIVE, 14)
        assert "no data by the stage deadline" in outcome.reason

    def test_kill_switch_rolls_back_on_the_first_running_poll(self) -> None:
        """A canary over the kill-switch line is rolled back on the first poll that judges."""
        config = kayenta_style(kill_switch=[{"metric": "error_rate", "max": 0.01}])
        outcome = backtest(config, recording(20, canary_events=100.0))
        assert (outcome.verdict, outcome.step) == (BacktestVerdict.ROLLBACK, 3)
        assert outcome.reason.startswith("kill-switch: ")

    def test_refuses_a_config_with_another_step(self) -> None:
        """The config's step must be the recording's step_s; the error names both."""
        rec = fixture("aa-0001")
        with pytest.raises(InvalidInput) as caught:
            backtest(kayenta_style(step="30s"), rec)
        assert caught.value.field == f"{rec.source}: step_s"
        assert "step_s is 60s" in caught.value.message
        assert "has step 30s" in caught.value.message

    def test_zero_errors_on_both_sides_do_not_roll_back(self) -> None:
        """A/A with no errors at all on either side is not rolled back (DESIGN §4 rule 6)."""
        rec = recording(30, base_events=0.0, canary_events=0.0)
        assert backtest(sequential(), rec).verdict is not BacktestVerdict.ROLLBACK


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


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def fixture_paths() -> list[str]:
    return [str(p) for p in sorted(FIXTURES.glob("*.json"))]


class TestBacktestCommand:
    def test_table_then_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        """By default: a table (name, verdict, step, minute, reason), then the summary."""
        code, out, err = run(["backtest", "--config", str(SEQUENTIAL), *fixture_paths()], capsys)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0].split() == ["name", "verdict", "step", "minute", "reason"]
        assert lines[1].split()[:4] == ["aa-0001", "promote", "59", "59"]
        assert [line.split()[1] for line in lines[2:5]] == ["rollback"] * 3
        assert lines[5] == ""
        assert lines[6].startswith("false rollbacks: 0 of 1 A/A runs (0.0 %, 95 % CI 0.0–79.3 %)")
        assert lines[7].startswith("power: 3 of 3 regressions detected (100.0 %)")
        assert lines[8].startswith("median time to detect: ")

    def test_json_lines_have_the_exact_shape(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json: one line per recording with exactly name, verdict, step, reason; then the
        summary as a last line under "summary"."""
        code, out, _ = run(
            ["backtest", "--json", "--config", str(SEQUENTIAL), *fixture_paths()], capsys
        )
        assert code == 0
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 5
        for line, path in zip(lines[:4], fixture_paths(), strict=True):
            assert list(line) == ["name", "verdict", "step", "reason"]
            assert line["name"] == Path(path).stem
            assert line["verdict"] in {"rollback", "promote", "inconclusive", "none"}
            assert isinstance(line["step"], int)
            assert isinstance(line["reason"], str)
        assert lines[0] == {
            "name": "aa-0001",
            "verdict": "promote",
            "step": 59,
            "reason": "score 100 ≥ pass 75",
        }
        assert list(lines[4]) == ["summary"]
        assert lines[4]["summary"]["power"] == 1.0
        assert lines[4]["summary"]["false_rollbacks"] == 0

    def test_no_summary_without_truth(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Recordings without truth get verdict lines only; a null step prints as null."""
        doc = dump_recording(recording(5))
        path = tmp_path / "plain.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        stages = '[{"weight": 50, "duration": "1h"}]'
        code, out, _ = run(
            ["backtest", "--json", "--stages", stages, "--config", str(SEQUENTIAL), str(path)],
            capsys,
        )
        assert code == 0
        (line,) = [json.loads(text) for text in out.splitlines()]
        assert (line["name"], line["verdict"], line["step"]) == ("synthetic", "none", None)
        assert '"step": null' in out

    @pytest.mark.parametrize(
        ("doc_change", "field"),
        [
            ({"step_s": -60}, "step_s"),
            (
                {
                    "metrics": {
                        "error_rate": {
                            "kind": "count",
                            "baseline": {"events": [1]},
                            "canary": {"events": [1], "exposure": [1]},
                        }
                    }
                },
                "metrics.error_rate.baseline.exposure",
            ),
            (
                {"truth": {"regression": True, "metric": "error_rate", "onset_step": 99}},
                "truth.onset_step",
            ),
        ],
    )
    def test_bad_recording_exits_2_naming_file_and_field(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        doc_change: dict[str, Any],
        field: str,
    ) -> None:
        """A bad recording stops the run before any replay, exit 2, naming file and field."""
        path = tmp_path / "broken-0001.json"
        path.write_text(json.dumps({**dump_recording(recording(5)), **doc_change}), "utf-8")
        code, out, err = run(
            ["backtest", "--config", str(SEQUENTIAL), fixture_paths()[0], str(path)], capsys
        )
        assert (code, out) == (2, "")
        assert err.startswith(f"canaryd backtest: invalid input: {path}: {field}: "), err

    def test_bad_config_exits_2_naming_file_and_field(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A config with a misspelt key is refused naming the file and the key."""
        config = tmp_path / "bad.yaml"
        config.write_text(SEQUENTIAL.read_text("utf-8").replace("alpha:", "alpah:"), "utf-8")
        code, _, err = run(["backtest", "--config", str(config), *fixture_paths()], capsys)
        assert code == 2
        assert f"{config}: alpah: Extra inputs are not permitted" in err

    def test_step_mismatch_exits_2_naming_both(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A config at 30 s against 60 s recordings is refused naming both step lengths."""
        config = tmp_path / "fast.yaml"
        config.write_text(SEQUENTIAL.read_text("utf-8").replace("step: 60s", "step: 30s"), "utf-8")
        code, _, err = run(["backtest", "--config", str(config), fixture_paths()[0]], capsys)
        assert code == 2
        assert f"{fixture_paths()[0]}: step_s: the recording's step_s is 60s" in err
        assert "step 30s" in err

    def test_bad_stages_exit_2_naming_the_flag(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--stages is validated as at registration; errors name the flag and the stage."""
        stages = '[{"weight": 5, "duration": "10 minutes"}]'
        code, _, err = run(
            ["backtest", "--stages", stages, "--config", str(SEQUENTIAL), fixture_paths()[0]],
            capsys,
        )
        assert code == 2
        assert "--stages: 0.duration: invalid duration" in err

    def test_missing_metric_is_warned_about(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A config metric the recording lacks is named on stderr and judged as no data."""
        config = tmp_path / "more.yaml"
        text = SEQUENTIAL.read_text("utf-8").replace("name: latency_p99", "name: latency_p95")
        config.write_text(text.replace("{metric: latency_p99", "{metric: latency_p95"), "utf-8")
        code, _, err = run(["backtest", "--config", str(config), fixture_paths()[0]], capsys)
        assert code == 0
        assert f"warning: {fixture_paths()[0]} has no latency_p95; judged as no data" in err

    def test_progress_bar_for_long_runs(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Over 20 recordings, --progress draws a bar on stderr; stdout stays clean."""
        paths = []
        for i in range(21):
            path = tmp_path / f"r-{i:02d}.json"
            doc = dump_recording(recording(3, name=f"r-{i:02d}"))
            path.write_text(json.dumps(doc), "utf-8")
            paths.append(str(path))
        argv = ["backtest", "--json", "--config", str(SEQUENTIAL), *paths]
        code, out, err = run([*argv[:1], "--progress", *argv[1:]], capsys)
        assert code == 0
        assert len(out.splitlines()) == 21
        assert "\r[" in err
        assert f"[{'#' * 30}] 21/21" in err
        assert err.endswith("\n")
        for flags in ([], ["--no-progress"]):  # stderr is not a terminal under capsys
            code, _, err = run([*argv[:1], *flags, *argv[1:]], capsys)
            assert (code, err) == (0, "")
        code, _, err = run(["backtest", "--progress", *argv[1:-1]], capsys)  # 20: no bar
        assert (code, err) == (0, "")

    def test_console_script(self) -> None:
        """The installed canaryd script runs a backtest and exits 0."""
        done = subprocess.run(
            [str(CANARYD), "backtest", "--json", "--config", str(SEQUENTIAL), fixture_paths()[1]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        line = json.loads(done.stdout.splitlines()[0])
        assert (line["name"], line["verdict"]) == ("err-3x-0001", "rollback")


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
