"""Shared fixtures of the analyzer tests: a fake clock, a judge-config factory, an open SQLite
store with its catalog, telemetry, one client session, and a recording webhook receiver on
127.0.0.1.

The fakes, configs and receiver live in ``support`` (import from there, never from
``conftest``: several conftest modules share that name).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import JudgeConfig, parse_config
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from support.configs import config_body
from support.fakes import MakeConfig, SteppedClock
from support.loopback import WebhookReceiver


@pytest.fixture
def make_config() -> MakeConfig:
    """Build a validated JudgeConfig from the base config with top-level overrides."""

    def make(**overrides: Any) -> JudgeConfig:
        return parse_config(config_body(**overrides))

    return make


@pytest.fixture
def clock() -> SteppedClock:
    """A fake clock at 2026-01-01T00:00:00Z that moves only when the test jumps it."""
    return SteppedClock()


@pytest.fixture
def db_file(tmp_path: Path) -> str:
    """Where the test's SQLite database lives."""
    return str(tmp_path / "canaryd.db")


@pytest.fixture
async def store(db_file: str) -> AsyncIterator[SqliteStore]:
    """An open store on a fresh file, closed after the test."""
    opened = SqliteStore(db_file)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def catalog(store: SqliteStore, clock: SteppedClock) -> Catalog:
    """Judge configs kept in the test's store."""
    return Catalog(store, clock)


@pytest.fixture
def telemetry() -> Telemetry:
    """The daemon's metrics on a registry of the test's own."""
    return Telemetry()


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    """A recording webhook endpoint on 127.0.0.1 that checks each request's HMAC."""
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session, as the daemon has one per process."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CANARYD_ variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("CANARYD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def default_logging() -> Iterator[None]:
    """structlog's default configuration for the test, whatever another test configured."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)
