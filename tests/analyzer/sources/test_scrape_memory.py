"""What the scrape source keeps in memory: per canary and side, only the scrapes its window can
still use, and nothing once the canary has finished."""

from __future__ import annotations

import aiohttp
import numpy as np

from analyzer.clock import FakeClock
from analyzer.metricdata import SideName
from analyzer.model import Action, Side, Stage
from analyzer.sources.protocol import FetchRequest
from analyzer.sources.scrape import ScrapeSource
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from support.configs import judge_config
from support.exporters import Exporter, ScrapedCanary, serve
from support.fakes import SteppedClock
from support.queries import ERRORS, STEP, gauge
from support.scheduling import Daemon

HOUR = (Stage(weight=10, duration_s=3600),)


class TestHistory:
    """ScrapeSource's per-canary scrape history: bounded, and released by forget."""

    async def test_forget(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """A forgotten canary starts again without history."""
        await canary.fetch(ERRORS)
        await canary.clock.advance(STEP)
        canary.source.forget("c-1")
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        assert np.isnan(data.canary.exposure).all()
        assert "no scrape 60s before this step" in data.error

    async def test_forget_drops_both_sides_of_that_canary_only(
        self, session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock
    ) -> None:
        """forget releases the canary's histories on both sides; other canaries keep theirs."""
        source = ScrapeSource(session, clock=clock)
        for canary_id in ("c-1", "c-2"):
            await source.fetch(
                FetchRequest(
                    canary_id=canary_id,
                    metrics=(ERRORS,),
                    baseline=Side(labels={"deployment": "b"}, targets=(exporter.url("b"),)),
                    canary=Side(labels={"deployment": "c"}, targets=(exporter.url("c"),)),
                    start=clock.now(),
                    end=clock.now(),
                    step_s=STEP,
                )
            )
        source.forget("c-1")
        assert sorted(source._history) == [("c-2", SideName.BASELINE), ("c-2", SideName.CANARY)]
        assert source.remembered() == {"c-2"}

    async def test_history_is_bounded(
        self, session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock
    ) -> None:
        """A sliding window keeps only the scrapes it can still use: its steps plus two."""
        source = ScrapeSource(session, clock=clock)
        canary = ScrapedCanary(
            source, clock, (exporter.url("b"),), (exporter.url("c"),), lookback_steps=3
        )
        for step in range(10):
            serve(exporter.pod("c"), ok=step, errors=0)
            await canary.fetch(ERRORS)
            await clock.advance(STEP)
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        np.testing.assert_array_equal(data.canary.exposure, [8, 9, 0])
        assert len(source._history["c-1", "canary"]) == 3 + 2  # the bound, seen from inside

    async def test_no_targets(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        """A side without targets has no data, and says so."""
        canary = ScrapedCanary(ScrapeSource(session, clock=clock), clock, (), ())
        data = (await canary.fetch(gauge("q", "sum(queue_depth{${selector}})"))).metrics["q"]
        assert data.error == "baseline, canary: the side has no scrape targets"


class TestChurn:
    """Canaries come and go under a running scheduler with the embedded scrape source."""

    async def test_history_holds_only_live_canaries(
        self,
        store: SqliteStore,
        clock: SteppedClock,
        telemetry: Telemetry,
        session: aiohttp.ClientSession,
        exporter: Exporter,
    ) -> None:
        """Twelve canaries registered over 24 steps, every third step one finished (aborted or
        promoted by hand): after every wake-up the source holds history for live canaries only,
        and once the churn is over exactly for the ones still running."""
        source = ScrapeSource(session, clock=clock, timeout_s=2.0)
        daemon = Daemon(store, clock, telemetry, source)
        config = judge_config(
            "http-golden-signals",
            metrics=["error_rate"],
            queries={"error_rate": ERRORS.templates},
            warmup="0s",
            kill_switch=[],
        )
        live: list[str] = []
        finished: list[str] = []
        for step in range(24):
            if step % 2 == 0:
                pods = (exporter.url(f"b{step}"),), (exporter.url(f"c{step}"),)
                canary = await daemon.register(config, f"c{step}", stages=HOUR, targets=pods)
                live.append(canary.id)
            if step % 3 == 2:
                gone = live.pop(0)
                action = Action.ABORT if len(finished) % 2 == 0 else Action.PROMOTE
                await daemon.fleet.act(gone, action, "churn")
                finished.append(gone)
            for pod in exporter.pods.values():
                serve(pod, ok=100, errors=1)
            await daemon.wake()
            assert source.remembered() <= set(live), f"step {step}: a finished canary is kept"
            assert not source.remembered() & set(finished)
            await clock.advance(STEP)
        for _ in range(2):  # every live canary fetched again, none finished since
            await daemon.wake()
            await clock.advance(STEP)
        assert (len(live), len(finished)) == (4, 8)
        assert source.remembered() == set(live)
        assert {key[0] for key in source._history} == set(live)  # seen from inside, too
