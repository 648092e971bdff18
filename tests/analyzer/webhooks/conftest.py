"""Fixtures of the webhook tests."""

from __future__ import annotations

import aiohttp
import pytest

from analyzer.store.sqlite import SqliteStore
from support.fakes import SteppedClock
from support.loopback import WebhookReceiver
from support.outbox import Harness


@pytest.fixture
def harness(
    store: SqliteStore,
    session: aiohttp.ClientSession,
    clock: SteppedClock,
    webhook_receiver: WebhookReceiver,
) -> Harness:
    """Everything a dispatcher test needs."""
    return Harness(store=store, session=session, clock=clock, receiver=webhook_receiver)
