"""Shutdown of the real ``canaryd serve`` process with a webhook that never gets an answer.

DESIGN §5–6: the grace period bounds what the daemon waits for — a delivery still held when it
runs out is cut off, the daemon exits 0, and the delivery stays pending in the outbox to be sent
by the next daemon under the same X-Canaryd-Delivery; a second SIGTERM forces an immediate
non-zero exit. The stuck delivery is a manual promote whose webhook the receiver holds
(:class:`support.shutdown_rig.StuckDelivery`).

Nothing is timed: each test waits for the state it needs (the webhook held, the log line
``daemon.stopping``, the process's exit), each wait bounded.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.procs import log_events
from support.shutdown_rig import WAIT_S, StuckDelivery

if TYPE_CHECKING:  # the fixtures' types; conftest is not imported at run time
    from conftest import StartDaemon, Until
    from support.procs import DaemonProc

pytestmark = [pytest.mark.slow]

GRACE_S = 3.0
LONG_GRACE_S = 30.0  # as long as the webhook timeout: the second SIGTERM comes well before
FORCED_EXIT_S = 15.0  # well inside LONG_GRACE_S: a forced exit does not wait for the grace


async def _stopping(daemon: DaemonProc, until: Until) -> None:
    """Wait until the daemon has logged that it is stopping."""

    async def logged() -> bool:
        return "daemon.stopping" in [e.get("event") for e in log_events(daemon.log)]

    assert await until(logged, timeout_s=WAIT_S, interval_s=0.02), daemon.log_tail()


class TestStuckDelivery:
    """SIGTERM while the one webhook in flight is held by the receiver."""

    async def test_grace_period_bounds_a_stuck_delivery(
        self, start_daemon: StartDaemon, until: Until, tmp_path: Path
    ) -> None:
        """A webhook held past the grace period is cut off, exit is 0, and it is sent later."""
        async with StuckDelivery(start_daemon, tmp_path, GRACE_S) as rig:
            rig.daemon.proc.send_signal(signal.SIGTERM)
            await _stopping(rig.daemon, until)
            assert rig.daemon.proc.returncode is None, "exited without waiting for the webhook"
            code = await asyncio.wait_for(rig.daemon.proc.wait(), GRACE_S + WAIT_S)
            assert code == 0, rig.daemon.log_tail()
            assert rig.unanswered(), "the daemon exited after the webhook was answered"
            assert "daemon.stopped" in [e["event"] for e in log_events(rig.daemon.log)]
            await rig.delivered_after_restart()

    async def test_second_sigterm_forces_a_prompt_exit(
        self, start_daemon: StartDaemon, until: Until, tmp_path: Path
    ) -> None:
        """While it waits on a stuck webhook, a second SIGTERM exits non-zero at once."""
        async with StuckDelivery(start_daemon, tmp_path, LONG_GRACE_S) as rig:
            rig.daemon.proc.send_signal(signal.SIGTERM)
            await _stopping(rig.daemon, until)
            assert rig.daemon.proc.returncode is None, "exited before the second SIGTERM"
            rig.daemon.proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(rig.daemon.proc.wait(), FORCED_EXIT_S)
            assert code not in (0, None), rig.daemon.log_tail()
            assert rig.unanswered(), "the forced exit waited for the webhook"
            names = [e["event"] for e in log_events(rig.daemon.log)]
            assert "daemon.forced_exit" in names
            assert "daemon.stopped" not in names
            await rig.delivered_after_restart()
