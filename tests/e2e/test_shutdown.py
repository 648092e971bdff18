"""Shutdown of the real ``canaryd serve`` process: SIGTERM while ticks and deliveries are in flight.

DESIGN §5–6 and the daemon's docstring: on SIGTERM the daemon stops taking registrations (503,
then the listener closes), lets in-flight ticks and deliveries finish within
``CANARYD_SHUTDOWN_GRACE_S``, then cancels what is left and exits 0; a second SIGTERM forces
an immediate non-zero exit. Whatever was cut short stays in the outbox, so a restart on the
same database delivers it under the same X-Canaryd-Delivery.

The first test runs against a real Prometheus behind a proxy that holds every query 1 s (so
ticks take a while) and a receiver that holds every webhook 1.2 s. The stuck-delivery tests
need no metrics: a canary in a long warm-up is promoted over the API — a manual decision that
notifies — and its webhook is held by the receiver until released.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import yaml

from support.procs import (
    HOOK_PATH,
    HOST,
    TERMINAL,
    Api,
    HookRecorder,
    SlowProxy,
    assert_consistent,
    keep_log,
    log_events,
    port_of,
    prometheus_has_data,
    reserve_port,
    seed_fleet,
    serve_on,
    snapshot_db,
    spawn_daemon,
    terminate,
)

if TYPE_CHECKING:  # the fixtures' types; conftest is not imported at run time
    import socket

    from aiohttp import web

    from conftest import Daemon, Prometheus, Receiver, StartDaemon, Until

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

GRACE_S = 3.0
CLOSE_MARGIN_S = 2.0  # closing the session and the store, and the interpreter's exit
WAIT_S = 30.0
QUERY_DELAY_S = 1.0
HOOK_HOLD_S = 1.2
RESUMED_FLEET = 3000  # canaries to resume at start-up: a few tenths of a second of it

CONFIG: dict[str, Any] = {
    "name": "shutdown-kill-switch",
    "description": "A kill-switch on the error ratio at 2 s steps, for the shutdown tests.",
    "step": "2s",
    "analysis_interval": "6s",
    "on_inconclusive": "rollback",  # every canary finishes: promoted or rolled back
    "metrics": [
        {
            "name": "error_rate",
            "kind": "count",
            "judge": "mann-whitney",
            "direction": "increase",
            "critical": True,
            "effect_size": {"allowed_increase": 1.5, "critical_increase": 2.0},
            "query": {
                "events": 'sum(increase(http_requests_total{code=~"5..",${selector}}[${step}]))',
                "exposure": "sum(increase(http_requests_total{${selector}}[${step}]))",
            },
        },
    ],
    "kill_switch": [
        {"metric": "error_rate", "max_ratio": 3.0, "min_exposure": 2000, "window": "6s"},
    ],
}
PARKED_CONFIG: dict[str, Any] = {**CONFIG, "name": "shutdown-parked", "warmup": "10m"}
STAGES = [{"weight": 25, "duration": "4s"}, {"weight": 100, "duration": "0s"}]


def _registration(service: str, n: int, hook_url: str, config: str) -> dict[str, Any]:
    return {
        "name": f"{service}-{n}",
        "service": service,
        "config": config,
        "baseline": {"labels": {"deployment": f"{service}-baseline"}},
        "canary": {"labels": {"deployment": f"{service}-canary"}},
        "stages": STAGES,
        "webhook": {"url": hook_url},
        "mode": "live",
    }


def _settings(
    prometheus_url: str,
    receiver: Receiver,
    hook_sock: socket.socket,
    tmp_path: Path,
    grace_s: float,
) -> dict[str, str]:
    configs = tmp_path / "configs"
    configs.mkdir(exist_ok=True)
    for config in (CONFIG, PARKED_CONFIG):
        (configs / f"{config['name']}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return {
        "CANARYD_PROMETHEUS_URL": prometheus_url,
        "CANARYD_DATABASE_URL": f"sqlite:///{tmp_path / 'shutdown.db'}",
        "CANARYD_CONFIG_DIR": str(configs),
        "CANARYD_SHUTDOWN_GRACE_S": f"{grace_s:g}",
        "CANARYD_WEBHOOK_SECRET": receiver.secret,
        "CANARYD_WEBHOOK_ALLOWED_HOSTS": f"{HOST}:{port_of(hook_sock)}",
        "CANARYD_WEBHOOK_TIMEOUT_S": "30",  # longer than any grace here: the grace decides
        "CANARYD_WEBHOOK_MAX_BACKOFF_S": "1",
        "CANARYD_SOURCE_TIMEOUT_S": "5",
    }


def _db(settings: dict[str, str]) -> Path:
    return Path(settings["CANARYD_DATABASE_URL"].removeprefix("sqlite:///"))


def _hook_url(hook_sock: socket.socket) -> str:
    return f"http://{HOST}:{port_of(hook_sock)}{HOOK_PATH}"


def _events_after(log: Path, event: str) -> list[dict[str, Any]]:
    events = log_events(log)
    names = [e.get("event") for e in events]
    assert event in names, f"no {event} in the log"
    return events[names.index(event) :]


async def _settled(api: Api, ids: list[str]) -> bool:
    """Every canary finished and every delivery of theirs acknowledged or given up."""
    for cid in ids:
        state = await api.canary(cid)
        if state["phase"] not in TERMINAL:
            return False
        if any(d["state"] == "pending" for d in state["deliveries"]):
            return False
    return True


async def _sigterm_exit(daemon: Daemon) -> int:
    """SIGTERM a daemon with nothing in flight; its exit code."""
    daemon.proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(daemon.proc.wait(), GRACE_S + CLOSE_MARGIN_S)


class TestSigterm:
    """SIGTERM of the daemon process while it works."""

    async def test_in_flight_ticks_and_deliveries_finish_then_exit_zero(
        self,
        prometheus: Prometheus,
        receiver: Receiver,
        start_daemon: StartDaemon,
        until: Until,
        tmp_path: Path,
    ) -> None:
        """Registrations refused at once; the tick and webhooks in flight finish; exit 0."""
        proxy = SlowProxy(prometheus.url, QUERY_DELAY_S)
        proxy_sock, hook_sock = reserve_port(), reserve_port()
        recorder = HookRecorder(receiver.hook, hold_s=HOOK_HOLD_S)
        runners: list[web.AppRunner] = []
        try:
            runners.append(await serve_on(proxy.app(), proxy_sock))
            runners.append(await serve_on(recorder.app(), hook_sock))
            proxy_url = f"http://{HOST}:{port_of(proxy_sock)}"
            settings = _settings(proxy_url, receiver, hook_sock, tmp_path, GRACE_S)
            daemon = await start_daemon(settings)
            async with aiohttp.ClientSession() as client:
                assert await until(
                    lambda: prometheus_has_data(client, prometheus.url, 4), timeout_s=WAIT_S
                ), prometheus.log_tail()
                api = Api(client, daemon.url, daemon.token)
                ids = []
                for n, service in enumerate(("search", "checkout", "search", "search", "checkout")):
                    body = _registration(service, n, _hook_url(hook_sock), CONFIG["name"])
                    ids.append(await api.register(body))
                    await asyncio.sleep(0.3)  # staggered step grids: ticks nearly always in flight

                async def busy() -> bool:
                    return bool(recorder.holding) and proxy.in_progress > 0

                assert await until(busy, timeout_s=WAIT_S, interval_s=0.02), daemon.log_tail()
                in_flight = list(recorder.holding)
                daemon.proc.send_signal(signal.SIGTERM)
                sent = time.monotonic()
                await asyncio.sleep(0.2)
                refused = await api.registration_refused(body)
                code = await asyncio.wait_for(daemon.proc.wait(), GRACE_S + 10)
                took = time.monotonic() - sent
            assert refused in ("503", "refused")
            assert code == 0, daemon.log_tail()
            assert took <= GRACE_S + CLOSE_MARGIN_S, took

            # What was in flight at the signal finished, after it, within the grace period.
            after = _events_after(daemon.log, "daemon.stopping")
            names = [e["event"] for e in after]
            assert "tick.completed" in names, "the tick waiting on Prometheus was not recorded"
            delivered = {e["delivery_id"] for e in after if e["event"] == "webhook.delivered"}
            assert set(in_flight) <= delivered, (in_flight, delivered)
            assert names[-1] == "daemon.stopped"
            assert "daemon.task_failed" not in names

            snap = snapshot_db(_db(settings))
            assert set(snap.canaries) == set(ids), "a registration was taken after SIGTERM"
            assert_consistent(snap)
            outbox = {o["delivery_id"]: o for rows in snap.outbox.values() for o in rows}
            for delivery in in_flight:
                assert outbox[delivery]["state"] == "delivered"
                assert len(recorder.acknowledged(delivery)) == 1

            # A restart on the same database resumes the canaries still running and sends what
            # is still pending — decisions of the ticks that finished during the shutdown.
            keep_log(daemon.log, "canaryd.1.log")
            recorder.hold_s = 0.0
            daemon = await start_daemon(settings)
            async with aiohttp.ClientSession() as client:
                api = Api(client, daemon.url, daemon.token)
                assert await until(lambda: _settled(api, ids), timeout_s=WAIT_S), daemon.log_tail()
            assert await _sigterm_exit(daemon) == 0
            snap = snapshot_db(_db(settings))
            assert_consistent(snap)
            for rows in snap.outbox.values():
                for row in rows:
                    assert row["state"] == "delivered", row
                    assert len(recorder.acknowledged(row["delivery_id"])) == 1, row
            assert receiver.rejected == 0
        finally:
            for runner in runners:
                await runner.cleanup()
            proxy_sock.close()
            hook_sock.close()

    async def test_grace_period_bounds_a_stuck_delivery(
        self, receiver: Receiver, start_daemon: StartDaemon, until: Until, tmp_path: Path
    ) -> None:
        """A webhook held past the grace period is cut off, exit is 0, and it is sent later."""
        async with _StuckDelivery(receiver, start_daemon, until, tmp_path, GRACE_S) as rig:
            rig.daemon.proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            code = await asyncio.wait_for(rig.daemon.proc.wait(), GRACE_S + 10)
            took = time.monotonic() - sent
            assert code == 0, rig.daemon.log_tail()
            assert GRACE_S - 0.2 <= took <= GRACE_S + CLOSE_MARGIN_S, took
            assert "daemon.stopped" in [e["event"] for e in log_events(rig.daemon.log)]
            await rig.delivered_after_restart()

    async def test_second_sigterm_forces_a_prompt_exit(
        self, receiver: Receiver, start_daemon: StartDaemon, until: Until, tmp_path: Path
    ) -> None:
        """While it waits on a stuck webhook, a second SIGTERM exits non-zero at once."""
        grace_s = 30.0
        async with _StuckDelivery(receiver, start_daemon, until, tmp_path, grace_s) as rig:
            rig.daemon.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert rig.daemon.proc.returncode is None, "exited before the second SIGTERM"
            rig.daemon.proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            code = await asyncio.wait_for(rig.daemon.proc.wait(), 5.0)
            took = time.monotonic() - sent
            assert code not in (0, None), rig.daemon.log_tail()
            assert took < 1.0, took
            assert "daemon.forced_exit" in [e["event"] for e in log_events(rig.daemon.log)]
            await rig.delivered_after_restart()

    async def test_a_stalled_client_does_not_hold_the_shutdown(
        self, receiver: Receiver, start_daemon: StartDaemon, tmp_path: Path
    ) -> None:
        """A request stalled mid-body is cut off at the grace period (was aiohttp's 60 s)."""
        hook_sock, dead_sock = reserve_port(), reserve_port()
        dead_url = f"http://{HOST}:{port_of(dead_sock)}"
        writer: asyncio.StreamWriter | None = None
        try:
            settings = _settings(dead_url, receiver, hook_sock, tmp_path, GRACE_S)
            daemon = await start_daemon(settings)
            host, port = daemon.url.removeprefix("http://").split(":")
            _reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"POST /api/v1/canaries HTTP/1.1\r\nHost: canaryd\r\n"
                + f"Authorization: Bearer {daemon.token}\r\n".encode()
                + b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"na'
            )
            await writer.drain()
            await asyncio.sleep(0.3)  # the handler is reading the body
            daemon.proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            code = await asyncio.wait_for(daemon.proc.wait(), 90)
            took = time.monotonic() - sent
            assert code == 0, daemon.log_tail()
            assert took <= GRACE_S + CLOSE_MARGIN_S, took
        finally:
            if writer is not None:
                writer.close()
            hook_sock.close()
            dead_sock.close()

    async def test_sigterm_while_resuming_the_fleet_exits_zero(
        self, receiver: Receiver, until: Until, tmp_path: Path
    ) -> None:
        """SIGTERM in start-up — the store open, the stored fleet being resumed — is graceful."""
        hook_sock, dead_sock = reserve_port(), reserve_port()
        dead_url = f"http://{HOST}:{port_of(dead_sock)}"
        settings = _settings(dead_url, receiver, hook_sock, tmp_path, GRACE_S)
        db = _db(settings)
        await seed_fleet(db, PARKED_CONFIG, RESUMED_FLEET)
        log = tmp_path / "canaryd.log"
        proc = await spawn_daemon(settings, log)
        try:
            wal = db.with_name(db.name + "-wal")  # appears when the daemon opens the store

            async def opening() -> bool:
                return wal.exists() or proc.returncode is not None

            await until(opening, timeout_s=WAIT_S, interval_s=0.001)
            assert wal.exists(), f"the store was not opened in {WAIT_S:g}s"
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), GRACE_S + CLOSE_MARGIN_S + 5)
            assert code == 0, log.read_text(errors="replace")[-2000:]
            names = [e["event"] for e in log_events(log)]
            assert names[-1] == "daemon.stopped", names
            assert_consistent(snapshot_db(db))
        finally:
            await terminate(proc)
            hook_sock.close()
            dead_sock.close()


class _StuckDelivery:
    """A daemon whose one webhook (a manual promote) is held by the receiver until released."""

    def __init__(
        self,
        receiver: Receiver,
        start_daemon: StartDaemon,
        until: Until,
        tmp_path: Path,
        grace_s: float,
    ) -> None:
        self.receiver, self.start_daemon, self.until = receiver, start_daemon, until
        self.recorder = HookRecorder(receiver.hook, hold_s=60.0)
        self.hook_sock = reserve_port()
        self.dead_sock = reserve_port()  # Prometheus: never asked while the canary warms up
        dead_url = f"http://{HOST}:{port_of(self.dead_sock)}"
        self.settings = _settings(dead_url, receiver, self.hook_sock, tmp_path, grace_s)
        self.runner: web.AppRunner | None = None
        self.cid = ""
        self.delivery = ""

    async def __aenter__(self) -> _StuckDelivery:
        self.runner = await serve_on(self.recorder.app(), self.hook_sock)
        self.daemon = await self.start_daemon(self.settings)
        async with aiohttp.ClientSession() as client:
            api = Api(client, self.daemon.url, self.daemon.token)
            body = _registration("checkout", 0, _hook_url(self.hook_sock), PARKED_CONFIG["name"])
            self.cid = await api.register(body)
            promoted = await api.act(self.cid, "promote")
            assert promoted["phase"] == "promoted", promoted

        async def held() -> bool:
            return bool(self.recorder.holding)

        assert await self.until(held, timeout_s=WAIT_S), self.daemon.log_tail()
        [self.delivery] = self.recorder.holding
        assert self.delivery == f"{self.cid}:1"
        return self

    async def delivered_after_restart(self) -> None:
        """The cut-off delivery is still in the outbox; a restart sends it, same id and body."""
        snap = snapshot_db(_db(self.settings))
        assert_consistent(snap)
        [row] = snap.outbox[self.cid]
        assert (row["delivery_id"], row["state"]) == (self.delivery, "pending")
        keep_log(self.daemon.log, "canaryd.1.log")
        self.recorder.release_all()  # the held request is answered too (to a dead peer)
        self.daemon = await self.start_daemon(self.settings)
        async with aiohttp.ClientSession() as client:
            api = Api(client, self.daemon.url, self.daemon.token)
            assert await self.until(lambda: _settled(api, [self.cid]), timeout_s=WAIT_S)
            state = await api.canary(self.cid)
        assert [d["state"] for d in state["deliveries"]] == ["delivered"]
        assert [d["action"] for d in state["decisions"]] == ["promote"]
        attempts = self.recorder.of(self.delivery)
        assert len(attempts) >= 2, attempts  # at least once: the cut-off one and the resend
        assert self.recorder.ids() == {self.delivery}
        assert len({(a.body, a.signature, a.event) for a in attempts}) == 1
        assert bytes(row["body"]) == attempts[-1].body
        assert self.receiver.rejected == 0
        assert await _sigterm_exit(self.daemon) == 0

    async def __aexit__(self, *_exc: object) -> None:
        self.recorder.release_all()
        if self.runner is not None:
            await self.runner.cleanup()
        self.hook_sock.close()
        self.dead_sock.close()
