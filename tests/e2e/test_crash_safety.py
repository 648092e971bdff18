"""Crash safety: ``kill -9`` of the real ``canaryd serve`` process loses and repeats nothing.

The daemon queries a real Prometheus scraping four simulated deployments (conftest), with
``search``'s canary at 5× the error rate, so the kill-switch rolls it back within seconds. The
webhook receiver starts DOWN: its port is bound and not listening, so every attempt is refused.
The daemon is SIGKILLed at chosen points — right after a registration, during warm-up, mid-stage
with a decision recorded and its delivery failing — and restarted on the same SQLite file (the
crashed file itself: the tests read copies). Then the receiver comes up on the same port.

Expected (DESIGN §5–6): each canary resumes in its stored phase and stage with its timers
(created_at, stage_started_at, analysis_started_at as stored), no decision is made twice, and
every decision is delivered once the receiver is up, under the one X-Canaryd-Delivery it was
first attempted with, with the same signed body.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from support.daemon_api import Api, golden_signals, prometheus_has_data, write_configs
from support.loopback import Reply, WebhookReceiver
from support.procs import DaemonProc, PrometheusProc, keep_log, kill9, log_events
from support.snapshots import (
    DbSnapshot,
    assert_same_state,
    assert_same_timers,
    assert_stage_end_on_stored_timer,
    assert_warmup_from_registration,
    db_path,
    snapshot_db,
)

if TYPE_CHECKING:  # the fixtures' types; conftest is not imported at run time
    from conftest import StartDaemon, Until

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

WAIT_S = 30.0
STEP_S = 2.0
# Long enough that a restart (about 2 s, three times that on a slow runner) does not outlast
# the warm-up or the first stage before the state after it is compared with the stored one.
WARMUP_S = 10.0
FIRST_STAGE_S = 12.0

CONFIG: dict[str, Any] = golden_signals(
    "crash-golden-signals",
    "Error ratio and p99 latency at 2 s steps, for the crash-safety tests.",
    step_s=STEP_S,
)
WARM_CONFIG: dict[str, Any] = {**CONFIG, "name": "crash-warm-up", "warmup": f"{WARMUP_S:g}s"}

FAST_STAGES = [{"weight": 25, "duration": "6s"}, {"weight": 100, "duration": "0s"}]
SLOW_STAGES = [
    {"weight": 25, "duration": f"{FIRST_STAGE_S:g}s"},
    {"weight": 50, "duration": "60s"},
    {"weight": 100, "duration": "0s"},
]


def _registration(
    service: str, hook_url: str, config: str, stages: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": f"{service}-crash",
        "service": service,
        "config": config,
        "baseline": {"labels": {"deployment": f"{service}-baseline"}},
        "canary": {"labels": {"deployment": f"{service}-canary"}},
        "stages": stages,
        "webhook": {"url": hook_url},
        "mode": "live",
    }


def _receiver(first: Reply | None = None) -> WebhookReceiver:
    """The deploy system, DOWN until started: its port is bound and refuses connections."""
    return WebhookReceiver(os.urandom(16).hex(), require_signature=True, first=first)


def _settings(
    prometheus: PrometheusProc, receiver: WebhookReceiver, tmp_path: Path
) -> dict[str, str]:
    return {
        "CANARYD_PROMETHEUS_URL": prometheus.url,
        "CANARYD_DATABASE_URL": f"sqlite:///{tmp_path / 'crash.db'}",
        "CANARYD_CONFIG_DIR": str(write_configs(tmp_path / "configs", CONFIG, WARM_CONFIG)),
        "CANARYD_WEBHOOK_SECRET": receiver.secret,
        "CANARYD_WEBHOOK_ALLOWED_HOSTS": receiver.host,
        "CANARYD_WEBHOOK_TIMEOUT_S": "2",
        "CANARYD_WEBHOOK_MAX_BACKOFF_S": "1",  # retries every 0.5–1 s, before and after a crash
        "CANARYD_SOURCE_TIMEOUT_S": "5",
    }


def _api(client: aiohttp.ClientSession, daemon: DaemonProc) -> Api:
    return Api(client, daemon.url, daemon.token)


async def _kill(daemon: DaemonProc, db: Path, name: str) -> DbSnapshot:
    """SIGKILL the daemon, keep its log as ``name``, and read its database from a copy."""
    await kill9(daemon.proc)
    keep_log(daemon.log, name)
    return snapshot_db(db)


def _resumed(daemon: DaemonProc) -> int:
    started = [e for e in log_events(daemon.log) if e.get("event") == "daemon.started"]
    assert started, daemon.log_tail()
    return int(started[-1]["resumed"])


def _assert_delivered_once_per_decision(
    receiver: WebhookReceiver, states: dict[str, dict[str, Any]]
) -> None:
    """Every notifying decision acknowledged; every attempt of it the same id, body, signature."""
    expected = set()
    for cid, state in states.items():
        seqs = [d["seq"] for d in state["decisions"]]
        assert seqs == list(range(1, len(seqs) + 1)), f"{cid}: decision seqs {seqs}"
        for decision in state["decisions"]:
            if decision["action"] in ("rollback", "step", "promote"):
                assert decision["delivery_id"] == f"{cid}:{decision['seq']}"
                expected.add(decision["delivery_id"])
        assert {d["state"] for d in state["deliveries"]} <= {"delivered"}, state["deliveries"]
    assert set(receiver.ids) == expected
    for delivery in expected:
        attempts = receiver.of(delivery)
        assert len({(a.body, a.signature, a.event) for a in attempts}) == 1, delivery
        assert len(receiver.acknowledged(delivery)) == 1, [a.status for a in attempts]
    verified = [a.delivery for a in receiver.acknowledged() if a.signed]
    assert sorted(verified) == sorted(expected), "HMAC-verified events, one per decision"
    assert receiver.rejected == 0


class TestKillNine:
    """SIGKILL of the daemon process at chosen points, then a restart on the same database."""

    async def test_rollback_decided_while_receiver_down_is_delivered_after_kill_9(
        self, prometheus: PrometheusProc, start_daemon: StartDaemon, until: Until, tmp_path: Path
    ) -> None:
        """A rollback whose delivery is failing survives kill -9: sent once, same id, signed."""
        receiver = _receiver()
        settings = _settings(prometheus, receiver, tmp_path)
        db = db_path(settings)
        try:
            daemon = await start_daemon(settings)
            async with aiohttp.ClientSession() as client:
                assert await until(
                    lambda: prometheus_has_data(client, prometheus.url, 4), timeout_s=WAIT_S
                ), prometheus.log_tail()
                api = _api(client, daemon)
                cid = await api.register(
                    _registration("search", receiver.url, CONFIG["name"], FAST_STAGES)
                )
                before: dict[str, Any] = {}

                async def failing_retries() -> bool:
                    before.update(await api.canary(cid))
                    return any(d["attempts"] >= 2 for d in before["deliveries"])

                assert await until(failing_retries, timeout_s=WAIT_S), (
                    before.get("reason"),
                    daemon.log_tail(),
                )
            [decision] = before["decisions"]
            [delivery] = before["deliveries"]
            assert (decision["action"], before["phase"]) == ("rollback", "rolled_back")
            assert delivery["state"] == "pending", delivery
            assert "Connect" in delivery["last_error"], delivery["last_error"]
            first_id = delivery["delivery_id"]
            assert first_id == f"{cid}:{decision['seq']}"

            crashed = await _kill(daemon, db, "canaryd.1.log")
            [row] = crashed.outbox[cid]
            assert (row["delivery_id"], row["state"]) == (first_id, "pending")
            assert not receiver.attempts

            await receiver.start()  # the receiver comes up
            daemon = await start_daemon(settings)
            assert _resumed(daemon) == 0  # a rolled-back canary is finished, not resumed
            async with aiohttp.ClientSession() as client:
                api = _api(client, daemon)
                after: dict[str, Any] = {}

                async def delivered() -> bool:
                    after.update(await api.canary(cid))
                    return after["deliveries"][0]["state"] == "delivered"

                assert await until(delivered, timeout_s=WAIT_S), daemon.log_tail()

            [attempt] = receiver.of(first_id)
            assert receiver.ids == [first_id]
            assert (attempt.status, attempt.event, attempt.signed) == (200, "rollback", True)
            assert attempt.body == bytes(row["body"]), "the body first attempted, byte for byte"
            assert (attempt.json()["event"], attempt.json()["canary_id"]) == ("rollback", cid)
            assert receiver.rejected == 0
            assert after["decisions"] == before["decisions"], "decided again after the restart"
            assert after["ticks"] == before["ticks"], "a finished canary ticked again"
            assert after["deliveries"][0]["attempts"] == row["attempts"] + 1
            assert (after["phase"], after["weight"]) == ("rolled_back", 0)
        finally:
            await receiver.close()

    async def test_kill_9_at_each_point_resumes_where_it_stopped(
        self, prometheus: PrometheusProc, start_daemon: StartDaemon, until: Until, tmp_path: Path
    ) -> None:
        """Killed after a registration, in warm-up, mid-stage and in the next stage: resumed."""
        receiver = _receiver(first=Reply(status=503, text="try again"))
        settings = _settings(prometheus, receiver, tmp_path)
        db = db_path(settings)
        hook_url = receiver.url
        try:
            async with aiohttp.ClientSession() as client:
                # 1. Right after a registration's 201.
                daemon = await start_daemon(settings)
                assert await until(
                    lambda: prometheus_has_data(client, prometheus.url, 4), timeout_s=WAIT_S
                ), prometheus.log_tail()
                good = await _api(client, daemon).register(
                    _registration("checkout", hook_url, WARM_CONFIG["name"], SLOW_STAGES)
                )
                snap1 = await _kill(daemon, db, "canaryd.1.log")
                assert snap1.canaries[good]["phase"] == "warmup"

                # 2. In warm-up: resumed in warm-up, then killed again before it ends.
                daemon = await start_daemon(settings)
                api = _api(client, daemon)
                assert _resumed(daemon) == 1
                assert_same_state(snap1, good, await api.canary(good))
                snap2 = await _kill(daemon, db, "canaryd.2.log")
                assert_same_timers(snap1, snap2, good)

                # 3. Mid-stage, with the bad canary's rollback recorded and its delivery failing.
                daemon = await start_daemon(settings)
                api = _api(client, daemon)
                bad = await api.register(
                    _registration("search", hook_url, CONFIG["name"], FAST_STAGES)
                )
                states: dict[str, dict[str, Any]] = {}

                async def mid_stage_with_failing_delivery() -> bool:
                    for cid in (good, bad):
                        states[cid] = await api.canary(cid)
                    running = [t for t in states[good]["ticks"] if t["phase"] == "running"]
                    attempted = [d for d in states[bad]["deliveries"] if d["attempts"] >= 1]
                    return len(running) >= 2 and bool(attempted)

                assert await until(mid_stage_with_failing_delivery, timeout_s=WAIT_S), (
                    {c: s["reason"] for c, s in states.items()},
                    daemon.log_tail(),
                )
                assert (states[good]["phase"], states[good]["stage"]) == ("running", 0)
                assert states[bad]["phase"] == "rolled_back"
                assert states[bad]["deliveries"][0]["state"] == "pending"
                snap3 = await _kill(daemon, db, "canaryd.3.log")
                assert_warmup_from_registration(snap3, good, WARMUP_S)
                warm = snap3.canaries[good]

                daemon = await start_daemon(settings)
                api = _api(client, daemon)
                assert _resumed(daemon) == 1  # the good one; the bad one is finished
                for cid in (good, bad):
                    assert_same_state(snap3, cid, await api.canary(cid))
                assert (await api.canary(bad))["deliveries"][0]["state"] == "pending"

                # The receiver comes up: the rollback and the stage-end decision are delivered.
                await receiver.start()

                async def decided_and_delivered() -> bool:
                    for cid in (good, bad):
                        states[cid] = await api.canary(cid)
                    return bool(states[good]["decisions"]) and all(
                        d["state"] == "delivered" for s in states.values() for d in s["deliveries"]
                    )

                assert await until(decided_and_delivered, timeout_s=WAIT_S), (
                    {c: s["reason"] for c, s in states.items()},
                    daemon.log_tail(),
                )
                assert_stage_end_on_stored_timer(
                    states[good], warm["stage_started_at"] + FIRST_STAGE_S
                )

                # 4. After the stage-end decision: in the next stage, or paused when its score
                # was inconclusive, or rolled back when it failed. Each is resumed as stored.
                snap4 = await _kill(daemon, db, "canaryd.4.log")
                assert_same_timers(snap3, snap4, bad)
                daemon = await start_daemon(settings)
                api = _api(client, daemon)
                assert _resumed(daemon) == len(snap4.live())
                assert_same_state(snap4, good, await api.canary(good))
                await self._moves_on_after_restart(api, good, snap4, until, daemon)
                states[bad] = await api.canary(bad)
                states[good] = await api.canary(good)
            snap5 = await _kill(daemon, db, "canaryd.5.log")
            assert_same_timers(snap4, snap5, good)
            _assert_delivered_once_per_decision(receiver, states)
            assert [d["action"] for d in states[bad]["decisions"]] == ["rollback"]
            assert len(receiver.of(f"{bad}:1")) == 2  # after the restart: 503, then acknowledged
        finally:
            await receiver.close()

    @staticmethod
    async def _moves_on_after_restart(
        api: Api, cid: str, stored: DbSnapshot, until: Until, daemon: DaemonProc
    ) -> None:
        """Whatever the stage-end decision was, the resumed canary carries on from it: running
        in the next stage it ticks again; paused, it ticks again once a human resumes it;
        rolled back, it is finished and does not tick."""
        row = stored.canaries[cid]
        last = stored.decisions[cid][-1]
        ticks = len(stored.ticks[cid])
        match row["phase"]:
            case "running":
                assert (last["action"], row["stage_index"]) == ("step", 1), last
            case "paused":
                assert last["action"] == "pause", last
                resumed = await api.act(cid, "resume")
                assert resumed["phase"] == "running", resumed
            case "rolled_back":
                assert last["action"] == "rollback", last
                assert len((await api.canary(cid))["ticks"]) == ticks
                return
            case phase:
                pytest.fail(f"unexpected phase after the first stage: {phase} ({last})")

        async def ticked_again() -> bool:
            return len((await api.canary(cid))["ticks"]) > ticks

        assert await until(ticked_again, timeout_s=WAIT_S), daemon.log_tail()
