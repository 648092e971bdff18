"""Fixtures of the security tests: hostile endpoints on loopback, a fake clock, a session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from analyzer.clock import FakeClock
from support.loopback import serving
from support.outbound import HostileTarget


@pytest.fixture
async def target() -> AsyncIterator[HostileTarget]:
    """The hostile endpoints on 127.0.0.1 (see support.outbound)."""
    hostile = HostileTarget()
    async with serving(hostile.app()) as server:
        hostile.url = f"http://{server.host}:{server.port}"
        yield hostile


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at 2026-01-01T00:00:00Z."""
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session (the checks under test are the source's own)."""
    async with aiohttp.ClientSession() as client:
        yield client
