"""Fixtures of the source tests: live exporters on loopback and a scraped canary on them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from analyzer.clock import FakeClock
from analyzer.sources.scrape import ScrapeSource
from support.exporters import Exporter, ScrapedCanary


@pytest.fixture
async def exporter() -> AsyncIterator[Exporter]:
    """Pods' /metrics on 127.0.0.1, stopped after the test."""
    exporter = Exporter()
    await exporter.server.start_server()
    yield exporter
    await exporter.server.close()


@pytest.fixture
def canary(session: aiohttp.ClientSession, exporter: Exporter, clock: FakeClock) -> ScrapedCanary:
    """Canary ``c-1``: one baseline pod and one canary pod, scraped on the fake clock."""
    source = ScrapeSource(session, clock=clock, timeout_s=2.0)
    return ScrapedCanary(source, clock, (exporter.url("baseline"),), (exporter.url("canary"),))
