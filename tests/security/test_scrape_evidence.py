"""H3: a failed scrape's evidence says what failed in a fixed form — the status, or the content
type and size of what came — never any of the body nor the connection's details; redirects are
not followed; a target outside the scrape allow-list is never requested."""

from __future__ import annotations

import aiohttp
import pytest

from analyzer.clock import FakeClock
from analyzer.sources.scrape import ScrapeSource
from support.outbound import SECRET, SECRET_PATH, HostileTarget, scraped
from support.queries import TOTAL


async def scrape_error(source: ScrapeSource, clock: FakeClock, url: str) -> str:
    """The error of the ``total`` metric after one scrape of ``url`` on both sides."""
    window = await scraped(source, clock, url).fetch(TOTAL)
    return window.metrics["total"].error


class TestFailureMessages:
    """What a failed scrape leaves in the evidence."""

    async def test_not_exposition_text(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """An HTML page: its content type and size, none of its text."""
        error = await scrape_error(ScrapeSource(session, clock=clock), clock, target.at("/html"))
        body_bytes = len(f"<html>{SECRET}</html>")
        assert f"not Prometheus exposition text (text/html, {body_bytes} bytes)" in error
        assert SECRET not in error
        assert "html>" not in error

    async def test_error_status(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """A 503: the status alone."""
        url = target.at("/unavailable")
        error = await scrape_error(ScrapeSource(session, clock=clock), clock, url)
        assert f"scrape of {url} failed: HTTP 503" in error
        assert SECRET not in error

    async def test_connection_refused(
        self, session: aiohttp.ClientSession, clock: FakeClock, refused_url: str
    ) -> None:
        """A refused connection: a fixed message, no OS error text."""
        url = f"{refused_url}/metrics"
        error = await scrape_error(ScrapeSource(session, clock=clock), clock, url)
        assert f"scrape of {url} failed: connection failed" in error
        for detail in ("Errno", "Connect call", "refused", "Cannot connect"):
            assert detail not in error

    async def test_redirect_not_followed(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """A 302 fails the scrape as a status; its Location is never requested."""
        url = target.at("/redirect")
        error = await scrape_error(ScrapeSource(session, clock=clock), clock, url)
        assert f"scrape of {url} failed: HTTP 302" in error
        assert SECRET_PATH not in target.hits


class TestAllowList:
    """The source checks its allow-list before every scrape."""

    @pytest.mark.parametrize("allowed", [[], ["127.0.0.2"], ["127.0.0.1:1"]])
    async def test_target_outside_the_list(
        self,
        session: aiohttp.ClientSession,
        target: HostileTarget,
        clock: FakeClock,
        allowed: list[str],
    ) -> None:
        """A target the list does not admit fails without a request."""
        source = ScrapeSource(session, clock=clock, allowed_hosts=allowed)
        url = target.at("/metrics")
        error = await scrape_error(source, clock, url)
        assert f"scrape of {url} failed: not an allowed scrape target" in error
        assert target.hits == {}

    async def test_target_in_the_list(
        self, session: aiohttp.ClientSession, target: HostileTarget, clock: FakeClock
    ) -> None:
        """A target the list admits (host:port) is scraped."""
        source = ScrapeSource(session, clock=clock, allowed_hosts=[f"127.0.0.1:{target.port}"])
        assert await scrape_error(source, clock, target.at("/metrics")) == ""
        assert target.hits == {"/metrics": 2}
