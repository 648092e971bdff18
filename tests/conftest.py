"""Fixtures for every test (analyzer and end-to-end alike)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.loopback import refused_url as _refused_url


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL where connections are refused for the whole test: its port is held by
    a bound socket that never listens (so nobody else can take it meanwhile)."""
    with _refused_url() as url:
        yield url
