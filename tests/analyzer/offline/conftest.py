"""Fixtures of the offline tools' tests: a fake Prometheus to capture from."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.captures import golden, scripted
from support.prometheus import FakePrometheus


@pytest.fixture
async def prometheus() -> AsyncIterator[FakePrometheus]:
    """The fake Prometheus on 127.0.0.1 answering the golden samples; records requests."""
    async with FakePrometheus(handler=scripted(golden)) as fake:
        yield fake
