"""Fixtures for the store tests: an open SQLite store on a temporary file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from analyzer.store.sqlite import SqliteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's database file lives."""
    return tmp_path / "canaryd.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    """An open store on a fresh file, closed after the test."""
    opened = SqliteStore(str(db_path))
    await opened.open()
    yield opened
    await opened.close()
