"""/metrics stays bounded: user-valued labels are capped and released when canaries finish.

Finding M5 of the isolation review: every config metric name became a label value of
``canaryd_source_errors_total`` and was never freed (10,002 series from five registrations).
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Action
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import OVERFLOW, Telemetry
from support.fakes import T0, FakeSource, MakeConfig, SteppedClock, outage
from support.scheduling import LONG, STEP, Daemon


def source_error_series(telemetry: Telemetry) -> dict[str, float]:
    """``canaryd_source_errors_total`` by its metric label, as /metrics shows it."""
    text = telemetry.exposition().decode()
    return {
        sample.labels["metric"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "canaryd_source_errors_total"
    }


class TestBoundedLabels:
    """Telemetry.source_error and release."""

    def test_values_past_the_bound_are_counted_as_other(self) -> None:
        """Three distinct names are kept; the fourth and fifth count under _other."""
        telemetry = Telemetry(max_label_values=3)
        for k in range(5):
            telemetry.source_error(f"c{k}", f"metric_{k}")
        series = source_error_series(telemetry)
        assert series == {"metric_0": 1, "metric_1": 1, "metric_2": 1, OVERFLOW: 2}
        assert telemetry.label_values == 4

    def test_a_value_goes_when_its_last_canary_finishes(self) -> None:
        """A name shared by two canaries stays until both are released; then its series is
        gone from /metrics and its slot is free for a new name."""
        telemetry = Telemetry(max_label_values=2)
        telemetry.source_error("a", "shared")
        telemetry.source_error("b", "shared")
        telemetry.source_error("b", "own")
        telemetry.release("a")
        assert set(source_error_series(telemetry)) == {"shared", "own"}
        telemetry.release("b")
        assert source_error_series(telemetry) == {}
        telemetry.source_error("c", "new")
        assert source_error_series(telemetry) == {"new": 1}

    def test_long_values_are_cut(self) -> None:
        """A label value is at most 128 characters."""
        telemetry = Telemetry()
        telemetry.source_error("a", "m" * 10_000)
        [value] = source_error_series(telemetry)
        assert len(value) == 128


class TestThroughTheScheduler:
    """The scheduler reports source errors per canary and releases them at the finish."""

    async def test_finished_canary_leaves_no_series(
        self,
        store: SqliteStore,
        clock: SteppedClock,
        telemetry: Telemetry,
        make_config: MakeConfig,
    ) -> None:
        """A canary whose source is down counts errors per metric; once it is aborted, the
        next wake-up removes its series."""
        config: JudgeConfig = make_config()
        daemon = Daemon(store, clock, telemetry, FakeSource(outage()))
        canary = await daemon.register(config, "down", stages=LONG)
        await daemon.wake()
        await clock.jump_to(T0 + STEP)
        await daemon.wake()
        assert set(source_error_series(telemetry)) == {m.name for m in config.metrics}
        await daemon.fleet.act(canary.id, Action.ABORT, "done")
        await clock.jump_to(T0 + 2 * STEP)
        await daemon.wake()
        assert source_error_series(telemetry) == {}
