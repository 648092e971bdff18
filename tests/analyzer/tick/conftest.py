"""Fixtures of the tick tests: the base judge config, and for the scheduler's tests a
recording FakeSource with the fleet and scheduler over the test's store and clock."""

from __future__ import annotations

import pytest

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from support.fakes import FakeSource, MakeConfig, SteppedClock
from support.scheduling import HEALTHY, Daemon


@pytest.fixture
def config(make_config: MakeConfig) -> JudgeConfig:
    """step 60 s, interval 5 m, no warm-up, pass 75, marginal 50, hold on no data, pause when
    inconclusive."""
    return make_config()


@pytest.fixture
def source() -> FakeSource:
    """Healthy traffic for every canary unless a test swaps the handler."""
    return FakeSource(HEALTHY)


@pytest.fixture
def daemon(
    store: SqliteStore, clock: SteppedClock, telemetry: Telemetry, source: FakeSource
) -> Daemon:
    """Fleet and scheduler over the test's store, clock and source."""
    return Daemon(store, clock, telemetry, source)
