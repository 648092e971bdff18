"""Fixtures for the webhook tests: a fake clock, an open store and one client session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from analyzer.clock import FakeClock
from analyzer.store.sqlite import SqliteStore


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test advances it."""
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open store on a fresh file, closed after the test."""
    opened = SqliteStore(str(tmp_path / "canaryd.db"))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The one client session the dispatcher sends with."""
    async with aiohttp.ClientSession() as client:
        yield client
