"""The shutdown tests' fleet: judge configs, daemon settings, registrations, and a daemon whose one
webhook is stuck (:class:`StuckDelivery`).

A stuck delivery needs no metrics: a canary in a long warm-up is promoted over the API — a
manual decision that notifies — and the receiver holds that webhook until released.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from support.daemon_api import Api, write_configs
from support.loopback import Reply, WebhookReceiver, refused_url
from support.procs import DaemonProc, keep_log, sigterm_exit, until
from support.snapshots import assert_consistent, db_path, snapshot_db

__all__ = ["CONFIG", "PARKED_CONFIG", "WAIT_S", "StuckDelivery", "registration", "settings"]

WAIT_S = 30.0
HOLD_S = 600.0  # longer than any test: a held webhook is answered when the test releases it

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

StartDaemon = Callable[[Mapping[str, str]], Awaitable[DaemonProc]]


def registration(service: str, n: int, hook_url: str, config: str) -> dict[str, Any]:
    """A live canary of ``service`` (``<service>-baseline`` against ``<service>-canary``)."""
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


def settings(
    prometheus_url: str,
    receiver: WebhookReceiver,
    tmp_path: Path,
    grace_s: float,
    *,
    source_timeout_s: float = 5.0,
) -> dict[str, str]:
    """CANARYD_* settings: both configs, a tmp database, webhooks to ``receiver``."""
    configs = write_configs(tmp_path / "configs", CONFIG, PARKED_CONFIG)
    return {
        "CANARYD_PROMETHEUS_URL": prometheus_url,
        "CANARYD_DATABASE_URL": f"sqlite:///{tmp_path / 'shutdown.db'}",
        "CANARYD_CONFIG_DIR": str(configs),
        "CANARYD_SHUTDOWN_GRACE_S": f"{grace_s:g}",
        "CANARYD_WEBHOOK_SECRET": receiver.secret,
        "CANARYD_WEBHOOK_ALLOWED_HOSTS": receiver.host,
        "CANARYD_WEBHOOK_TIMEOUT_S": "30",  # longer than any grace here: the grace decides
        "CANARYD_WEBHOOK_MAX_BACKOFF_S": "1",
        "CANARYD_SOURCE_TIMEOUT_S": f"{source_timeout_s:g}",
    }


class StuckDelivery:
    """A daemon whose one webhook (a manual promote) is held by the receiver until released."""

    def __init__(self, start_daemon: StartDaemon, tmp_path: Path, grace_s: float) -> None:
        self.start_daemon, self.tmp_path, self.grace_s = start_daemon, tmp_path, grace_s
        self.receiver = WebhookReceiver(
            os.urandom(16).hex(), require_signature=True, reply=Reply(hold_s=HOLD_S)
        )
        self._stack = contextlib.AsyncExitStack()
        self.settings: dict[str, str] = {}
        self.cid = ""
        self.delivery = ""

    async def __aenter__(self) -> StuckDelivery:
        async with contextlib.AsyncExitStack() as stack:
            dead_url = stack.enter_context(refused_url())  # Prometheus: never asked in warm-up
            self.settings = settings(dead_url, self.receiver, self.tmp_path, self.grace_s)
            await stack.enter_async_context(self.receiver)
            await self._promote()
            self._stack = stack.pop_all()
        return self

    async def _promote(self) -> None:
        self.daemon = await self.start_daemon(self.settings)
        async with aiohttp.ClientSession() as client:
            api = Api(client, self.daemon.url, self.daemon.token)
            body = registration("checkout", 0, self.receiver.url, PARKED_CONFIG["name"])
            self.cid = await api.register(body)
            promoted = await api.act(self.cid, "promote")
            assert promoted["phase"] == "promoted", promoted
        await self.receiver.until(lambda: self.receiver.in_flight, "a held webhook")
        [self.delivery] = self.receiver.in_flight
        assert self.delivery == f"{self.cid}:1"

    def unanswered(self) -> bool:
        """The held webhook was never answered: the daemon cannot have seen its outcome. (The
        receiver's held request may already be gone: the server drops it when the daemon's
        connection closes.)"""
        return self.delivery not in [a.delivery for a in self.receiver.answered]

    async def delivered_after_restart(self) -> None:
        """The cut-off delivery is still in the outbox; a restart sends it, same id and body."""
        snap = snapshot_db(db_path(self.settings))
        assert_consistent(snap)
        [row] = snap.outbox[self.cid]
        assert (row["delivery_id"], row["state"]) == (self.delivery, "pending")
        keep_log(self.daemon.log, "canaryd.1.log")
        self.receiver.release()  # the held request is answered too (to a peer that is gone)
        self.daemon = await self.start_daemon(self.settings)
        async with aiohttp.ClientSession() as client:
            api = Api(client, self.daemon.url, self.daemon.token)
            assert await until(lambda: api.settled([self.cid]), timeout_s=WAIT_S)
            state = await api.canary(self.cid)
        assert [d["state"] for d in state["deliveries"]] == ["delivered"]
        assert [d["action"] for d in state["decisions"]] == ["promote"]
        attempts = self.receiver.of(self.delivery)
        assert len(attempts) >= 2, attempts  # at least once: the cut-off one and the resend
        assert set(self.receiver.ids) == {self.delivery}
        assert len({(a.body, a.signature, a.event) for a in attempts}) == 1
        assert bytes(row["body"]) == attempts[-1].body
        assert self.receiver.rejected == 0
        assert await sigterm_exit(self.daemon.proc) == 0

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
