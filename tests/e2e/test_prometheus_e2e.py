"""End to end: real Prometheus, the real ``canaryd serve`` process, signed webhooks.

Prometheus scrapes four simulated deployments every second, each target labelled
``deployment=<name>``. The daemon queries it through ``CANARYD_PROMETHEUS_URL`` with a judge
config from ``CANARYD_CONFIG_DIR`` whose templates select each side by ``${selector}``.
``search``'s canary has 5× the error rate and +80 ms latency; ``checkout``'s is as good as its
baseline. Expected: a signed ``rollback`` for search, ``step`` then ``promote`` for checkout.

The step is 2 s while Prometheus scrapes every 1 s: ``increase(...[${step}])`` then covers two
or three samples (``[1s]`` over a 1 s scrape holds at most one sample and comes back empty).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from support.daemon_api import golden_signals, prometheus_has_data, write_configs
from support.loopback import WebhookReceiver
from support.procs import DaemonProc, PrometheusProc, sigterm_exit

if TYPE_CHECKING:  # the fixtures' types; conftest is not imported at run time
    from conftest import StartDaemon, Until

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

DECISION_TIMEOUT_S = 60.0
DATA_TIMEOUT_S = 30.0
TERMINAL = {"promoted", "rolled_back", "aborted", "failed", "paused"}

JUDGE_CONFIG: dict[str, Any] = golden_signals(
    "e2e-golden-signals",
    "Error ratio and p99 latency at 2 s steps, for the end-to-end test.",
    step_s=2.0,
)

STAGES = [
    {"weight": 25, "duration": "6s"},
    {"weight": 50, "duration": "6s"},
    {"weight": 100, "duration": "0s"},
]


def _registration(service: str, hook_url: str) -> dict[str, Any]:
    return {
        "name": f"{service}-e2e",
        "service": service,
        "config": JUDGE_CONFIG["name"],
        "baseline": {"labels": {"deployment": f"{service}-baseline"}},
        "canary": {"labels": {"deployment": f"{service}-canary"}},
        "stages": STAGES,
        "webhook": {"url": hook_url},
        "mode": "live",
        "metadata": {"commit": "e2e"},
    }


async def _canary(client: aiohttp.ClientSession, daemon: DaemonProc, cid: str) -> dict[str, Any]:
    async with client.get(f"{daemon.url}/api/v1/canaries/{cid}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def _forged_is_refused(client: aiohttp.ClientSession, receiver: WebhookReceiver) -> bool:
    """The receiver answers 401 to a body signed with another secret and records nothing."""
    body = b'{"event":"promote","canary_id":"forged"}'
    digest = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    headers = {"X-Canaryd-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}
    async with client.post(receiver.url, data=body, headers=headers) as resp:
        return resp.status == 401 and not receiver.acknowledged()


def _settled(state: dict[str, Any]) -> bool:
    """Finished, and every webhook delivery acknowledged or given up."""
    deliveries = state.get("deliveries") or []
    return state["phase"] in TERMINAL and all(d["state"] != "pending" for d in deliveries)


class TestPrometheusEndToEnd:
    """The daemon process against a real Prometheus and a verifying webhook receiver."""

    async def test_bad_canary_rolled_back_good_one_promoted(
        self,
        prometheus: PrometheusProc,
        receiver: WebhookReceiver,
        start_daemon: StartDaemon,
        until: Until,
        tmp_path: Path,
    ) -> None:
        """Signed rollback for the bad canary, promote for the good one; clean SIGTERM exit."""
        configs = write_configs(tmp_path / "configs", JUDGE_CONFIG)
        daemon = await start_daemon(
            {
                "CANARYD_PROMETHEUS_URL": prometheus.url,
                "CANARYD_WEBHOOK_SECRET": receiver.secret,
                "CANARYD_WEBHOOK_ALLOWED_HOSTS": receiver.host,
                "CANARYD_CONFIG_DIR": str(configs),
                "CANARYD_SOURCE_TIMEOUT_S": "5",
            }
        )
        headers = {"Authorization": f"Bearer {daemon.token}"}
        async with aiohttp.ClientSession(headers=headers) as client:
            scraped = await until(
                lambda: prometheus_has_data(client, prometheus.url, 4), timeout_s=DATA_TIMEOUT_S
            )
            assert scraped, f"Prometheus did not scrape all four targets:\n{prometheus.log_tail()}"

            assert await _forged_is_refused(client, receiver)
            ids = {}
            for service in ("checkout", "search"):
                body = _registration(service, receiver.url)
                async with client.post(f"{daemon.url}/api/v1/canaries", json=body) as resp:
                    created = await resp.json()
                    assert resp.status == 201, created
                ids[service] = created["id"]

            states: dict[str, dict[str, Any]] = {}

            async def settled() -> bool:
                for service, cid in ids.items():
                    states[service] = await _canary(client, daemon, cid)
                return all(_settled(s) for s in states.values())

            done = await until(settled, timeout_s=DECISION_TIMEOUT_S, interval_s=0.5)
            where = {s: (v["phase"], v["reason"]) for s, v in states.items()}
            assert done, f"not settled in {DECISION_TIMEOUT_S:g}s: {where}\n{daemon.log_tail()}"
            verdicts = {}
            for service, cid in ids.items():
                async with client.get(f"{daemon.url}/api/v1/canaries/{cid}/verdict") as resp:
                    verdicts[service] = (await resp.json())["verdict"]

        good, bad = states["checkout"], states["search"]
        assert bad["phase"] == "rolled_back", (bad["reason"], daemon.log_tail())
        assert good["phase"] == "promoted", (good["reason"], daemon.log_tail())
        assert verdicts == {"checkout": "pass", "search": "fail"}
        assert "error_rate" in bad["reason"]

        # Judged on real data: ticks recorded, and the good canary scored from Prometheus' series.
        assert bad["ticks"], "no ticks recorded for the bad canary"
        assert good["ticks"], "no ticks recorded for the good canary"
        scored = [t for t in good["ticks"] if t["score"] is not None]
        assert scored, [t["reason"] for t in good["ticks"]]
        assert scored[-1]["score"] >= JUDGE_CONFIG["score_thresholds"]["pass"]
        assert all(t["results"].get("no_data") is None for t in scored)

        # Webhooks: only signature-verified events count; none was rejected.
        assert receiver.rejected == 1  # the forged one
        assert receiver.events_of(ids["search"]) == ["rollback"]
        assert receiver.events_of(ids["checkout"]) == ["step", "promote"]
        for attempt in receiver.acknowledged():
            assert attempt.signed
            assert attempt.event == attempt.json()["event"]
            assert attempt.delivery.startswith(f"{attempt.json()['canary_id']}:")
        for state in (good, bad):
            assert {d["state"] for d in state["deliveries"]} == {"delivered"}

        # SIGTERM with nothing in flight: the daemon exits 0.
        assert await sigterm_exit(daemon.proc) == 0, daemon.log_tail()
