"""The scrape source against live exporters on loopback that the tests drive between fetches;
a fake clock stands in for time, so nothing sleeps."""

from __future__ import annotations

import math

import aiohttp
import numpy as np
import pytest

from analyzer.clock import FakeClock
from analyzer.errors import InvalidInput
from analyzer.sources.promql.parse import SUPPORTED_SHAPES
from analyzer.sources.scrape import ScrapeSource, check_supported
from support.exporters import Exporter, ScrapedCanary, serve
from support.queries import ERRORS, NAN, RATE, STEP, TOTAL, gauge, latency


class TestScrapeSource:
    """ScrapeSource.fetch: counters, histograms and gauges per step from live scrapes."""

    async def test_increase_per_step(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """Events and exposure are the counters' rises between consecutive scrapes."""
        window = await canary.fetch(ERRORS)
        assert "no scrape 60s before this step" in window.metrics["error_rate"].error

        serve(exporter.pod("baseline"), ok=90, errors=10)
        serve(exporter.pod("canary"), ok=80, errors=20)
        await canary.clock.advance(STEP)
        window = await canary.fetch(ERRORS)
        data = window.metrics["error_rate"]
        assert data.error == ""
        np.testing.assert_array_equal(data.baseline.events, [NAN, 10])
        np.testing.assert_array_equal(data.baseline.exposure, [NAN, 100])
        np.testing.assert_array_equal(data.canary.events, [NAN, 20])
        np.testing.assert_array_equal(data.canary.exposure, [NAN, 100])

        serve(exporter.pod("baseline"), ok=50, errors=0)
        serve(exporter.pod("canary"), ok=1, errors=2)
        await canary.clock.advance(STEP + 1.5)  # a late scrape still falls on its step
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        np.testing.assert_array_equal(data.baseline.events, [NAN, 10, 0])
        np.testing.assert_array_equal(data.baseline.exposure, [NAN, 100, 50])
        np.testing.assert_array_equal(data.canary.events, [NAN, 20, 2])
        np.testing.assert_array_equal(data.canary.exposure, [NAN, 100, 3])

    async def test_rate(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """rate is the increase per second of the range."""
        await canary.fetch(RATE)
        serve(exporter.pod("baseline"), ok=100, errors=20)
        serve(exporter.pod("canary"), ok=30, errors=0)
        await canary.clock.advance(STEP)
        data = (await canary.fetch(RATE)).metrics["request_rate"]
        np.testing.assert_allclose(data.baseline.values, [NAN, 2.0])
        np.testing.assert_allclose(data.canary.values, [NAN, 0.5])

    async def test_counter_reset(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """A counter that falls has restarted: the step's increase is its new value."""
        await canary.fetch(ERRORS)
        serve(exporter.pod("canary"), ok=95, errors=5)
        await canary.clock.advance(STEP)
        await canary.fetch(ERRORS)
        exporter.pod("canary").restart()
        serve(exporter.pod("canary"), ok=4, errors=3)
        await canary.clock.advance(STEP)
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        np.testing.assert_array_equal(data.canary.exposure, [NAN, 100, 7])
        np.testing.assert_array_equal(data.canary.events, [NAN, 5, 3])

    async def test_histogram_quantile(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """Quantiles interpolate within the bucket of the step's observations; a rank in the
        +Inf bucket gives the highest finite bound."""
        metrics = (latency(0.5), latency(0.9), latency(0.9, "increase"))
        await canary.fetch(*metrics)
        serve(exporter.pod("baseline"), ok=0, errors=0, durations=(0.05,) * 5 + (0.3,) * 5)
        serve(exporter.pod("canary"), ok=0, errors=0, durations=(2.0,) * 10)
        await canary.clock.advance(STEP)
        window = await canary.fetch(*metrics)
        p50, p90 = window.metrics["latency_rate_p0.5"], window.metrics["latency_rate_p0.9"]
        # baseline buckets le=0.1: 5, 0.5: 10, 1: 10, +Inf: 10
        assert p50.baseline.values[1] == pytest.approx(0.1)  # rank 5: top of the first bucket
        assert p90.baseline.values[1] == pytest.approx(0.1 + 0.4 * (9 - 5) / 5)
        assert p90.canary.values[1] == 1.0
        assert p50.canary.values[1] == 1.0
        assert math.isnan(p90.baseline.values[0])
        by_increase = window.metrics["latency_increase_p0.9"]
        np.testing.assert_array_equal(by_increase.baseline.values, p90.baseline.values)

    async def test_gauges(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """Gauges are read at the scrape, alone or summed, averaged, maxed, minned."""
        for pod, (a, b) in (("baseline", (3.0, 5.0)), ("canary", (10.0, 20.0))):
            exporter.pod(pod).queue.labels("a").set(a)
            exporter.pod(pod).queue.labels("b").set(b)
        metrics = [
            gauge(op, f"{op}(queue_depth{{${{selector}}}})") for op in ("sum", "avg", "max", "min")
        ]
        metrics.append(gauge("one", 'queue_depth{worker="a",${selector}}'))
        metrics.append(gauge("many", "queue_depth{${selector}}"))
        window = await canary.fetch(*metrics)
        got = {name: data.baseline.arrays[0] for name, data in window.metrics.items()}
        assert got["sum"][0] == 8.0
        assert got["avg"][0] == 4.0
        assert got["max"][0] == 5.0
        assert got["min"][0] == 3.0
        assert got["one"][0] == 3.0
        assert window.metrics["sum"].canary.values[0] == 30.0
        assert window.metrics["many"].error == (
            "baseline, canary: query returned 2 series with different labels; "
            "aggregate it (e.g. sum(...))"
        )

    async def test_side_labels_win(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """The side's labels select its samples; a clashing scraped label becomes exported_*."""
        exporter.pod("baseline").info.labels("impostor").set(1)
        exporter.pod("canary").info.labels("impostor").set(1)
        metric = gauge("info", 'sum(build_info{exported_deployment="impostor",${selector}})')
        other = gauge("other", 'sum(build_info{deployment="impostor"})')
        window = await canary.fetch(metric, other)
        assert window.metrics["info"].baseline.values[0] == 1.0
        assert "empty result: no series of build_info matched" in window.metrics["other"].error

    async def test_targets_summed(
        self, session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock
    ) -> None:
        """Counters of every target of a side add up."""
        source = ScrapeSource(session, clock=clock)
        pods = (exporter.url("b1"), exporter.url("b2"))
        canary = ScrapedCanary(source, clock, pods, (exporter.url("c1"),))
        await canary.fetch(ERRORS)
        serve(exporter.pod("b1"), ok=10, errors=1)
        serve(exporter.pod("b2"), ok=5, errors=2)
        await clock.advance(STEP)
        data = (await canary.fetch(ERRORS)).metrics["error_rate"]
        np.testing.assert_array_equal(data.baseline.exposure, [NAN, 18])
        np.testing.assert_array_equal(data.baseline.events, [NAN, 3])

    async def test_target_down(
        self,
        session: aiohttp.ClientSession,
        exporter: Exporter,
        clock: FakeClock,
        refused_url: str,
    ) -> None:
        """A target that cannot be scraped leaves no data, and the error says which and why."""
        source = ScrapeSource(session, clock=clock)
        down = f"{refused_url}/metrics"
        canary = ScrapedCanary(source, clock, (exporter.url("baseline"),), (down,))
        exporter.pod("baseline").queue.labels("a").set(1)
        await canary.fetch(ERRORS, gauge("q", "sum(queue_depth{${selector}})"))
        await clock.advance(STEP)
        window = await canary.fetch(ERRORS, gauge("q", "sum(queue_depth{${selector}})"))
        for data in window.metrics.values():
            assert f"scrape of {down} failed: connection failed" in data.error
            assert data.error.startswith("canary")
            assert all(np.isnan(values).all() for values in data.canary.arrays)

    async def test_not_exposition_text(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """A target answering something other than exposition text is a failed scrape."""
        exporter.garbled = {"canary"}
        data = (await canary.fetch(TOTAL)).metrics["total"]
        assert "failed: not Prometheus exposition text" in data.error
        assert np.isnan(data.canary.values).all()

    async def test_failed_scrape_is_a_missing_step(
        self, canary: ScrapedCanary, exporter: Exporter
    ) -> None:
        """A scrape that fails blanks the steps that need it; the others keep their values."""
        values = []
        for step in range(5):
            exporter.down = {"canary"} if step == 2 else set()
            serve(exporter.pod("canary"), ok=10 * step, errors=0)
            if step:
                await canary.clock.advance(STEP)
            window = await canary.fetch(ERRORS, TOTAL)
            values.append(window)
        data = values[-1].metrics["error_rate"]
        assert data.error == ""
        np.testing.assert_array_equal(data.canary.exposure, [NAN, 10, NAN, NAN, 40])
        sums = values[-1].metrics["total"].canary.values
        np.testing.assert_array_equal(sums, [0, 10, NAN, 60, 100])
        failed = values[2].metrics["total"]
        assert failed.error == ""  # steps 0 and 1 still have data
        np.testing.assert_array_equal(failed.canary.values, [0, 10, NAN])

    async def test_unsupported_shape(self, canary: ScrapedCanary, exporter: Exporter) -> None:
        """A query the scrape source cannot evaluate raises naming the supported shapes,
        before anything is scraped."""
        metric = gauge("raw_rate", "rate(http_requests_total{${selector}}[${step}])")
        with pytest.raises(InvalidInput) as caught:
            await canary.fetch(metric)
        assert caught.value.field == "metrics.raw_rate.query"
        assert all(shape in caught.value.message for shape in SUPPORTED_SHAPES)
        assert exporter.scrapes == 0
        with pytest.raises(InvalidInput, match="supported shapes"):
            check_supported('topk(3, x{a="b"})')
        check_supported('sum(rate(x{a="b"}[1m]))')
