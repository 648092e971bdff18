"""Backtests: recordings replayed through the daemon's lifecycle, with the shipped sequential
config and a Kayenta-style one."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.errors import InvalidInput
from analyzer.model import Stage
from analyzer.offline.backtest import BacktestOutcome, BacktestVerdict, backtest
from analyzer.offline.recording import Truth
from support.recordings import fixture, kayenta_style, recording, sequential


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
        back after onset, and the latency regression (30 % of the score) pauses for a human."""
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
        # latency-0001's truth block: latency_p99 regresses from step 10 (the canary's p99 30 %
        # up, fixtures/make_recordings.py); the error rates are the same. Here p99 is the one
        # non-critical metric of the latency group, worth 30 of the 100 points, so once it
        # fails the score is 70: between marginal 50 and pass 75, an inconclusive pause at the
        # stage end (the last recorded step). Neither promoted nor rolled back.
        latency = outcomes["latency-0001"]
        assert latency.truth == Truth(regression=True, metric="latency_p99", onset_step=10)
        assert (latency.verdict, latency.step) == (BacktestVerdict.INCONCLUSIVE, 59)
        assert latency.reason == (
            "inconclusive, paused for a human: score 70 between marginal and pass"
        )

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
