"""H4/M3: one target cannot hold the daemon — a body is read up to ``max_bytes`` and no further
(CANARYD_SCRAPE_MAX_BYTES, default 10 MiB), and connecting, reading and parsing all end within
the source's timeout, parsing and evaluation in a worker thread."""

from __future__ import annotations

import time

import aiohttp
import pytest

from analyzer.clock import FakeClock
from analyzer.settings import Settings
from analyzer.sources.scrape import DEFAULT_MAX_BYTES, ScrapeSource
from support.outbound import HostileTarget, scraped
from support.queries import TOTAL

MIB = 1024 * 1024


class TestBodyCap:
    """Bodies larger than max_bytes fail the scrape without being read to the end."""

    async def test_endless_stream(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """A stream that never ends is cut off just past the cap."""
        source = ScrapeSource(session, clock=clock, max_bytes=MIB, timeout_s=10.0)
        started = time.monotonic()
        window = await scraped(source, clock, target.at("/stream")).fetch(TOTAL)
        assert time.monotonic() - started < 5.0
        assert f"the body is over {MIB} bytes" in window.metrics["total"].error
        assert target.streamed_bytes < 16 * MIB  # both sides, and what the sockets buffered

    async def test_declared_length(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """A Content-Length over the cap fails at once."""
        source = ScrapeSource(session, clock=clock, max_bytes=MIB)
        window = await scraped(source, clock, target.at("/declared")).fetch(TOTAL)
        assert f"the body is over {MIB} bytes" in window.metrics["total"].error

    def test_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The default cap is 10 MiB, the setting's default too."""
        monkeypatch.delenv("CANARYD_SCRAPE_MAX_BYTES", raising=False)
        assert DEFAULT_MAX_BYTES == 10 * MIB
        assert Settings().scrape_max_bytes == 10 * MIB


class TestOneTimeout:
    """The timeout covers the whole scrape: reading and parsing too."""

    async def test_slow_stream(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """A body still streaming at the timeout fails the scrape then."""
        source = ScrapeSource(session, clock=clock, max_bytes=2**31, timeout_s=0.5)
        started = time.monotonic()
        window = await scraped(source, clock, target.at("/stream")).fetch(TOTAL)
        assert time.monotonic() - started < 3.0
        assert "timed out" in window.metrics["total"].error

    async def test_parse_past_the_timeout(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """An exposition that takes longer to parse than the timeout fails the scrape, and the
        fetch returns about then (the parse stops in its thread)."""
        target.big_series = 60_000
        source = ScrapeSource(session, clock=clock, timeout_s=0.3)
        started = time.monotonic()
        window = await scraped(source, clock, target.at("/big")).fetch(TOTAL)
        assert "timed out" in window.metrics["total"].error
        assert time.monotonic() - started < 3.0

    async def test_small_exposition_in_time(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """An ordinary exposition is parsed and evaluated (in a worker thread) in time."""
        source = ScrapeSource(session, clock=clock, timeout_s=2.0)
        window = await scraped(source, clock, target.at("/metrics")).fetch(TOTAL)
        data = window.metrics["total"]
        assert data.error == ""
        assert data.canary.values[0] == 0 + 1 + 2
