"""End to end: the daemon judges sequentially, live — rollback within the first interval, early
promotion with an "early" reason.

In-process: ``analyzer.daemon.Daemon`` (tmp SQLite, the scrape source, a bearer token, a webhook
secret) serves its API on 127.0.0.1, three simulated deployments (:mod:`support.deployments`)
expose real Prometheus metrics on their own loopback ports (one shared baseline, a healthy
canary, and one with 3× the baseline's error rate), and :class:`support.loopback.WebhookReceiver`
answers 401 to any webhook whose HMAC does not match. Both canaries are registered over HTTP
with a config whose only metric is the error rate judged by ``sequential-count`` at 1 s steps.

The analysis interval (30 s) is longer than the bad canary may live: a critical sequential
failure rolls back on the poll that proves it, so the rollback must come before the first
interval ends. The healthy canary's stage lasts 50 s with a 5 s minimum: once non-inferiority
(rate ratio < 1.2) is proven it is promoted early. (The lifecycle takes that early end on a
scored poll — an interval boundary — so the interval is 30 s rather than the minutes a real
config would use: long enough for the rollback to beat it, short enough for the test to stay
within a minute.) α = 0.01 keeps the healthy canary's false-rollback chance well below 1 %.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from analyzer.daemon import Daemon
from analyzer.settings import Settings
from support.deployments import Deployments, serving_deployments
from support.loopback import HOST, Attempt, WebhookReceiver, bind, port_of, serving

if TYPE_CHECKING:  # the fixtures' types; conftest is not imported at run time
    from conftest import Until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ANALYSIS_INTERVAL_S = 30.0
STAGE_S = 50.0
MIN_STAGE_S = 5.0
DEADLINE_S = 55.0
RPS = 1000.0
ERROR_RATE = 0.15  # ~150 errors/s per arm: non-inferiority is proven in ~10 s
DEPLOYMENTS = {
    "checkout-baseline": (ERROR_RATE, 0.120),
    "checkout-good": (ERROR_RATE, 0.120),
    "checkout-bad": (3 * ERROR_RATE, 0.120),
}
FINISHED = ("promoted", "rolled_back", "paused")

CONFIG: dict[str, Any] = {
    "name": "live-sequential",
    "description": "Error rate judged sequentially at 1 s steps (the live e2e test).",
    "step": "1s",
    "analysis_interval": f"{ANALYSIS_INTERVAL_S:g}s",
    "alpha": 0.01,
    "on_inconclusive": "pause",
    "metrics": [
        {
            "name": "error_rate",
            "kind": "count",
            "judge": "sequential-count",
            "direction": "increase",
            "critical": True,
            "tolerance": 1.2,
            "query": {
                "events": 'sum(increase(http_requests_total{code=~"5..",${selector}}[${step}]))',
                "exposure": "sum(increase(http_requests_total{${selector}}[${step}]))",
            },
        }
    ],
}

STAGES = [
    {"weight": 50, "duration": f"{STAGE_S:g}s", "min_duration": f"{MIN_STAGE_S:g}s"},
    {"weight": 100, "duration": "0s"},
]


@dataclass
class Live:
    """Everything running: the API's URL and token, the receiver, the deployments."""

    api: str
    token: str
    receiver: WebhookReceiver
    deployments: Deployments


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """The daemon, three deployments and the receiver, each on its own port; torn down after."""
    secret, token = os.urandom(16).hex(), os.urandom(16).hex()
    receiver = WebhookReceiver(secret, require_signature=True)
    async with (
        serving_deployments(DEPLOYMENTS, rps=RPS, seed=11) as deployments,
        receiver,
    ):
        sock = bind()
        url = f"http://{HOST}:{port_of(sock)}"
        settings = Settings(
            listen=url.removeprefix("http://"),
            database_url=f"sqlite:///{tmp_path / 'canaryd.db'}",
            api_tokens=[token],
            webhook_secret=secret,
            webhook_allowed_hosts=[receiver.host],
            scrape_allowed_hosts=list(deployments.targets.values()),
            config_dir=tmp_path / "configs",
            public_url=url,
            shutdown_grace_s=2.0,
            webhook_timeout_s=5.0,
        )
        async with serving(Daemon(settings).build(), sock):  # stopped first: no more webhooks
            yield Live(api=url, token=token, receiver=receiver, deployments=deployments)


def _registration(name: str, canary: str, live: Live) -> dict[str, Any]:
    return {
        "name": name,
        "service": "checkout",
        "config_inline": CONFIG,
        "baseline": {
            "labels": {"deployment": "checkout-baseline"},
            "targets": [live.deployments.metrics_url("checkout-baseline")],
        },
        "canary": {
            "labels": {"deployment": canary},
            "targets": [live.deployments.metrics_url(canary)],
        },
        "stages": STAGES,
        "webhook": {"url": live.receiver.url},
        "mode": "live",
        "metadata": {"commit": "e2e-sequential"},
    }


def _hooks(live: Live, cid: str) -> list[Attempt]:
    """The acknowledged webhooks of one canary, in arrival order."""
    return [a for a in live.receiver.acknowledged() if a.canary_id == cid]


def _analysis_start(state: dict[str, Any]) -> float:
    """When analysis began: the tick whose reason says so."""
    starts = [t["at"] for t in state["ticks"] if t["reason"] == "analysis started"]
    assert starts, [t["reason"] for t in state["ticks"][:3]]
    return float(starts[0])


class TestSequentialLive:
    """The sequential judge decides on every poll of the live daemon."""

    async def test_bad_canary_rolls_back_in_the_first_interval_good_one_is_promoted_early(
        self, live: Live, until: Until
    ) -> None:
        """3× errors: rolled back, with the e-value in the reason, before the first analysis
        interval ends; the healthy canary: promoted early, before its stages' full time."""
        headers = {"Authorization": f"Bearer {live.token}"}
        async with aiohttp.ClientSession(headers=headers) as client:
            ids = {}
            for name in ("checkout-bad", "checkout-good"):
                body = _registration(name, name, live)
                async with client.post(f"{live.api}/api/v1/canaries", json=body) as resp:
                    created = await resp.json()
                    assert resp.status == 201, created
                ids[name] = created["id"]
            states: dict[str, dict[str, Any]] = {}

            async def settled() -> bool:
                """Both finished, and each one's webhook acknowledged."""
                for name, cid in ids.items():
                    async with client.get(f"{live.api}/api/v1/canaries/{cid}") as resp:
                        assert resp.status == 200
                        states[name] = await resp.json()
                finished = all(s["phase"] in FINISHED for s in states.values())
                return finished and all(live.receiver.events_of(cid) for cid in ids.values())

            done = await until(settled, timeout_s=DEADLINE_S, interval_s=0.25)
            where = {name: (s["phase"], s["reason"]) for name, s in states.items()}
            assert done, f"not settled in {DEADLINE_S:g}s: {where}"
        bad, good = states["checkout-bad"], states["checkout-good"]

        assert live.receiver.rejected == 0
        assert bad["phase"] == "rolled_back", bad["reason"]
        [rollback] = [d for d in bad["decisions"] if d["action"] == "rollback"]
        # On the daemon's own tick grid: decided within the first interval, which was never
        # scored (a poll, not an interval boundary, rolled it back).
        took = rollback["decided_at"] - _analysis_start(bad)
        assert 0 < took < ANALYSIS_INTERVAL_S, took
        assert all(t["score"] is None for t in bad["ticks"]), [t["score"] for t in bad["ticks"]]
        reason = rollback["reason"]
        assert reason.startswith("error_rate: "), reason  # the judge's own words follow
        assert "e = " in reason, reason
        assert "≥ 100" in reason, reason
        [hook] = _hooks(live, ids["checkout-bad"])
        assert (hook.event, hook.json()["event"]) == ("rollback", "rollback")
        assert hook.json()["reason"] == reason

        assert good["phase"] == "promoted", good["reason"]
        [promote] = [d for d in good["decisions"] if d["action"] == "promote"]
        took = promote["decided_at"] - _analysis_start(good)
        assert MIN_STAGE_S <= took < STAGE_S, took
        reason = promote["reason"]
        assert reason.startswith("early: error_rate: "), reason
        assert "non-inferior" in reason, reason
        assert "< tolerance 1.2" in reason, reason
        [hook] = _hooks(live, ids["checkout-good"])
        assert (hook.event, hook.json()["weight"]) == ("promote", 100)
