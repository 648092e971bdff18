"""Fixtures of the offline tools' tests: a scripted fake Prometheus to capture from."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.captures import ScriptedPrometheus


@pytest.fixture
async def prometheus() -> AsyncIterator[ScriptedPrometheus]:
    """A scripted fake Prometheus on 127.0.0.1 answering the golden samples; records requests."""
    async with ScriptedPrometheus().serving() as fake:
        yield fake
