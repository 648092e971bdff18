"""Time, injected: the real clock for the daemon, a fake one that tests jump."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """Wall-clock seconds since the epoch, and a sleep that honours the same clock."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to; sleepers wake when it passes their deadline."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._changed = asyncio.Condition()

    def now(self) -> float:
        """The fake time."""
        return self._now

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Wait until the fake time has advanced by ``seconds`` from the moment of the call
        (not from when the coroutine first runs)."""
        return self._until(self._now + max(0.0, seconds))

    async def _until(self, deadline: float) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= deadline)

    async def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleepers that are due."""
        self._now += seconds
        async with self._changed:
            self._changed.notify_all()
        await asyncio.sleep(0)
