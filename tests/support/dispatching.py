"""Steering a fake clock around the webhook dispatcher: jump time only while it is parked.

The dispatcher sets :attr:`~analyzer.webhooks.dispatcher.WebhookDispatcher.parked` when it
sleeps until its next poll with no delivery in flight. A test that waits for that signal before
moving the clock never races a real HTTP round trip against fake time.
"""

from __future__ import annotations

import asyncio

import pytest

from analyzer.webhooks.dispatcher import WebhookDispatcher
from support.fakes import SteppedClock

__all__ = ["parked"]


async def parked(dispatcher: WebhookDispatcher, clock: SteppedClock, *, limit: int = 200) -> float:
    """Wait until ``dispatcher`` is parked until a poll still ahead of the fake clock (every
    delivery it started is sent and recorded); returns that poll's time. Bounded."""
    for _ in range(limit):
        try:
            async with asyncio.timeout(10):
                await dispatcher.parked.wait()
        except TimeoutError:
            pytest.fail("the dispatcher did not park within 10 s")
        if dispatcher.parked_until > clock.now():
            return dispatcher.parked_until
        dispatcher.parked.clear()  # seen: it is waking up for that poll; wait for the next park
    pytest.fail(f"the dispatcher did not park ahead of the clock in {limit} polls")
