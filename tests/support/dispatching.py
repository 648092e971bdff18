"""Steering a fake clock around the daemon's loops: jump time only while they are parked.

The webhook dispatcher and the scheduler set ``parked`` when they sleep until ``parked_until``
with nothing in flight (no delivery, no tick). A test that waits for that signal before moving
the clock never races a real HTTP round trip or a worker thread against fake time.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import pytest

from support.fakes import SteppedClock


class Parks(Protocol):
    """A loop that says when it is parked (the dispatcher, the scheduler)."""

    parked: asyncio.Event
    parked_until: float


__all__ = ["Parks", "parked"]


async def parked(loop: Parks, clock: SteppedClock, *, limit: int = 200) -> float:
    """Wait until ``loop`` is parked until a time still ahead of the fake clock (everything it
    started is done and recorded); returns that time. Bounded."""
    for _ in range(limit):
        try:
            async with asyncio.timeout(10):
                await loop.parked.wait()
        except TimeoutError:
            pytest.fail(f"{type(loop).__name__} did not park within 10 s")
        if loop.parked_until > clock.now():
            return loop.parked_until
        loop.parked.clear()  # seen: it is waking up for that poll; wait for the next park
    pytest.fail(f"{type(loop).__name__} did not park ahead of the clock in {limit} wake-ups")
