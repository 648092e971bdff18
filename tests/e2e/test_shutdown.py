"""Shutdown of the real ``canaryd serve`` process: SIGTERM while ticks and deliveries are in flight.

DESIGN §5–6 and the daemon's docstring: on SIGTERM the daemon stops taking registrations (503,
then the listener closes), lets in-flight ticks and deliveries finish within
``CANARYD_SHUTDOWN_GRACE_S``, then cancels what is left and exits 0. Whatever was cut short stays
in the outbox, so a restart on the same database delivers it under the same X-Canaryd-Delivery.
(The grace period's bound on a stuck delivery and the second SIGTERM: test_shutdown_stuck.py.)

The first test runs against a real Prometheus behind a gate (:mod:`support.proxy`) and a
receiver that holds every webhook: the signal is sent once a webhook *and* a tick's query are
held — both in flight by construction, not by timing — and both are let go once the daemon says
it is stopping.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

from support.daemon_api import Api, prometheus_has_data
from support.loopback import PortTaken, Reply, WebhookReceiver, on_fresh_port, refused_url, serving
from support.procs import (
    PrometheusProc,
    events_after,
    keep_log,
    log_events,
    port_taken,
    sigterm_exit,
    spawn_daemon,
    tail,
    terminate,
)
from support.proxy import GatedProxy
from support.shutdown_rig import CONFIG, PARKED_CONFIG, WAIT_S, registration, settings
from support.snapshots import assert_consistent, db_path, seed_fleet, snapshot_db

if TYPE_CHECKING:  # the fixtures' types; conftest is not imported at run time
    from conftest import StartDaemon, Until

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

GRACE_S = 10.0  # ample for the released tick and webhook to finish: nothing here is timed
STALL_GRACE_S = 3.0
STALL_BOUND_S = 30.0
"""The daemon with a stalled client must exit within this: aiohttp's own default held such a
request for 60 s; the daemon cuts it at its grace period (3 s here)."""
RESUMED_FLEET = 3000  # canaries to resume at start-up: a few tenths of a second of it


def _secret() -> str:
    return os.urandom(16).hex()


class TestSigterm:
    """SIGTERM of the daemon process while it works."""

    async def test_in_flight_ticks_and_deliveries_finish_then_exit_zero(
        self, prometheus: PrometheusProc, start_daemon: StartDaemon, until: Until, tmp_path: Path
    ) -> None:
        """Registrations refused at once; the tick and webhooks in flight finish; exit 0."""
        proxy = GatedProxy(prometheus.url)
        receiver = WebhookReceiver(_secret(), require_signature=True, reply=Reply(hold_s=600))
        async with receiver, serving(proxy.app()) as gate:
            gate_url = str(gate.make_url("")).rstrip("/")
            env = settings(gate_url, receiver, tmp_path, GRACE_S, source_timeout_s=30)
            daemon = await start_daemon(env)
            async with aiohttp.ClientSession() as client:
                assert await until(
                    lambda: prometheus_has_data(client, prometheus.url, 4), timeout_s=WAIT_S
                ), prometheus.log_tail()
                api = Api(client, daemon.url, daemon.token)
                ids = []
                for n, service in enumerate(("search", "checkout", "search", "search", "checkout")):
                    body = registration(service, n, receiver.url, CONFIG["name"])
                    ids.append(await api.register(body))

                # A webhook is held; from then on every query is held too: wait for one.
                await receiver.until(lambda: receiver.in_flight, "a held webhook", timeout_s=WAIT_S)
                proxy.hold()

                async def tick_waiting() -> bool:
                    return proxy.held > 0

                assert await until(tick_waiting, timeout_s=WAIT_S, interval_s=0.02), (
                    daemon.log_tail()
                )
                in_flight = list(receiver.in_flight)
                daemon.proc.send_signal(signal.SIGTERM)
                assert await until(api.not_ready, timeout_s=WAIT_S, interval_s=0.02)
                refused = await api.registration_refused(body)
                proxy.release()
                receiver.release()
                code = await asyncio.wait_for(daemon.proc.wait(), GRACE_S + WAIT_S)
            assert refused in ("503", "refused")
            assert code == 0, daemon.log_tail()

            # What was in flight at the signal finished, after it, within the grace period.
            after = events_after(daemon.log, "daemon.stopping")
            names = [e["event"] for e in after]
            assert "tick.completed" in names, "the tick waiting on Prometheus was not recorded"
            delivered = {e["delivery_id"] for e in after if e["event"] == "webhook.delivered"}
            assert set(in_flight) <= delivered, (in_flight, delivered)
            assert names[-1] == "daemon.stopped"
            assert "daemon.task_failed" not in names

            snap = snapshot_db(db_path(env))
            assert set(snap.canaries) == set(ids), "a registration was taken after SIGTERM"
            assert_consistent(snap)
            outbox = {o["delivery_id"]: o for rows in snap.outbox.values() for o in rows}
            for delivery in in_flight:
                assert outbox[delivery]["state"] == "delivered"
                assert len(receiver.acknowledged(delivery)) == 1

            # A restart on the same database resumes the canaries still running and sends what
            # is still pending — decisions of the ticks that finished during the shutdown.
            keep_log(daemon.log, "canaryd.1.log")
            daemon = await start_daemon(env)
            async with aiohttp.ClientSession() as client:
                api = Api(client, daemon.url, daemon.token)
                assert await until(lambda: api.settled(ids), timeout_s=WAIT_S), daemon.log_tail()
            assert await sigterm_exit(daemon.proc) == 0
            snap = snapshot_db(db_path(env))
            assert_consistent(snap)
            for rows in snap.outbox.values():
                for row in rows:
                    assert row["state"] == "delivered", row
                    assert len(receiver.acknowledged(row["delivery_id"])) == 1, row
            assert receiver.rejected == 0

    async def test_a_stalled_client_does_not_hold_the_shutdown(
        self, receiver: WebhookReceiver, start_daemon: StartDaemon, tmp_path: Path
    ) -> None:
        """A request stalled mid-body is cut off at the grace period (was aiohttp's 60 s)."""
        writer: asyncio.StreamWriter | None = None
        with refused_url() as dead_url:
            daemon = await start_daemon(settings(dead_url, receiver, tmp_path, STALL_GRACE_S))
            try:
                host, port = daemon.url.removeprefix("http://").split(":")
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(
                    b"POST /api/v1/canaries HTTP/1.1\r\nHost: canaryd\r\n"
                    + f"Authorization: Bearer {daemon.token}\r\n".encode()
                    + b"Content-Type: application/json\r\nContent-Length: 1000\r\n"
                    + b"Expect: 100-continue\r\n\r\n"
                )
                await writer.drain()
                # The server answers 100 Continue as it hands the request to its handler.
                interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
                assert interim.startswith(b"HTTP/1.1 100"), interim
                writer.write(b'{"na')  # a tenth of the body, and then nothing
                await writer.drain()
                daemon.proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(daemon.proc.wait(), STALL_BOUND_S)
                assert code == 0, daemon.log_tail()
                assert [e["event"] for e in log_events(daemon.log)][-1] == "daemon.stopped"
            finally:
                if writer is not None:
                    writer.close()

    async def test_sigterm_while_resuming_the_fleet_exits_zero(
        self, receiver: WebhookReceiver, until: Until, tmp_path: Path
    ) -> None:
        """SIGTERM in start-up — the store open, the stored fleet being resumed — is graceful."""
        with refused_url() as dead_url:
            env = settings(dead_url, receiver, tmp_path, STALL_GRACE_S)
            db = db_path(env)
            await seed_fleet(db, PARKED_CONFIG, RESUMED_FLEET)
            log = tmp_path / "canaryd.log"

            async def sigterm_in_start_up(port: int) -> int:
                proc = await spawn_daemon(env, log, port)
                try:
                    wal = db.with_name(db.name + "-wal")  # appears as the daemon opens the store

                    async def opening() -> bool:
                        return wal.exists() or proc.returncode is not None

                    await until(opening, timeout_s=WAIT_S, interval_s=0.001)
                    assert wal.exists(), f"the store was not opened in {WAIT_S:g}s"
                    proc.send_signal(signal.SIGTERM)
                    code = await asyncio.wait_for(proc.wait(), WAIT_S)
                finally:
                    await terminate(proc)
                if code != 0 and port_taken(log):
                    raise PortTaken
                return code

            code = await on_fresh_port(sigterm_in_start_up)
        assert code == 0, tail(log)
        names = [e["event"] for e in log_events(log)]
        assert names[-1] == "daemon.stopped", names
        assert_consistent(snapshot_db(db))
