"""Replay for backtests: the window a backtest asks for is the scheduler's, and ReplaySource maps
it onto the recorded steps by time."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.demo.simulator import ERROR_RATIO_QUERY
from analyzer.metricdata import MetricKind
from analyzer.model import Canary, Mode, Phase, Side, Stage
from analyzer.sources.protocol import FetchRequest, MetricQuery
from analyzer.sources.replay import ReplaySource
from analyzer.tick.lifecycle import window_bounds
from analyzer.tick.scheduler import Scheduler
from support.fakes import T0
from support.recordings import fixture, kayenta_style


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
