"""What the end-to-end tests send a daemon process and ask it: its HTTP API, the judge configs
it loads from ``CANARYD_CONFIG_DIR``, and whether Prometheus has the data it will query.

- :class:`Api`: registrations, actions and reads over one client session, and the states the
  tests wait for (every canary settled, the daemon no longer ready).
- :func:`golden_signals`: the demo's judge config at short steps; :func:`write_configs`.
- :func:`prometheus_has_data`: a rate for every scraped target.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from analyzer.demo.simulator import DEMO_CONFIG
from support.snapshots import TERMINAL

__all__ = ["Api", "golden_signals", "prometheus_has_data", "write_configs"]


@dataclass
class Api:
    """The daemon's HTTP API over one client session, for one daemon process (URL, token)."""

    client: aiohttp.ClientSession
    url: str
    token: str

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def register(self, body: dict[str, Any]) -> str:
        """POST /api/v1/canaries; the new canary's id."""
        async with self.client.post(
            f"{self.url}/api/v1/canaries", json=body, headers=self._auth
        ) as resp:
            created = await resp.json()
            assert resp.status == 201, created
            return str(created["id"])

    async def act(self, cid: str, action: str) -> dict[str, Any]:
        """POST /api/v1/canaries/{id}/{action}: the canary after it."""
        async with self.client.post(
            f"{self.url}/api/v1/canaries/{cid}/{action}", json={}, headers=self._auth
        ) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
            return body

    async def registration_refused(self, body: dict[str, Any]) -> str:
        """POST a registration to a daemon that is stopping: its status, or "refused"."""
        try:
            async with self.client.post(
                f"{self.url}/api/v1/canaries",
                json=body,
                headers=self._auth,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp:
                return str(resp.status)
        except aiohttp.ClientConnectionError:
            return "refused"

    async def not_ready(self) -> bool:
        """Whether ``/readyz`` answers 503 or the listener is closed (the daemon is stopping)."""
        try:
            async with self.client.get(
                f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                return resp.status == 503
        except aiohttp.ClientConnectionError:
            return True

    async def canary(self, cid: str) -> dict[str, Any]:
        """GET /api/v1/canaries/{id}: state, ticks, decisions and deliveries."""
        async with self.client.get(f"{self.url}/api/v1/canaries/{cid}", headers=self._auth) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body

    async def settled(self, ids: list[str]) -> bool:
        """Every canary finished and every delivery of theirs acknowledged or given up."""
        for cid in ids:
            state = await self.canary(cid)
            if state["phase"] not in TERMINAL:
                return False
            if any(d["state"] == "pending" for d in state["deliveries"]):
                return False
        return True


async def prometheus_has_data(client: aiohttp.ClientSession, url: str, targets: int) -> bool:
    """Whether Prometheus has a request rate for every target (≥ 2 samples each)."""
    query = "count by (deployment) (rate(http_requests_total[5s]))"
    async with client.get(f"{url}/api/v1/query", params={"query": query}) as resp:
        body = await resp.json()
    return len(body.get("data", {}).get("result", [])) == targets


def golden_signals(name: str, description: str, *, step_s: float = 2.0) -> dict[str, Any]:
    """The demo's judge config at ``step_s`` steps with a 6 s interval, for end-to-end tests:
    error ratio and p99 latency by Mann-Whitney, an error-ratio kill-switch."""
    config = copy.deepcopy(DEMO_CONFIG)
    config.update(
        name=name,
        description=description,
        step=f"{step_s:g}s",
        analysis_interval="6s",
        on_inconclusive="pause",
    )
    config["metrics"][1]["effect_size"] = {"allowed_increase": 1.2, "critical_increase": 1.5}
    config["kill_switch"] = [
        {"metric": "error_rate", "max_ratio": 3.0, "min_exposure": 2000, "window": "6s"}
    ]
    return config


def write_configs(directory: Path, *configs: dict[str, Any]) -> Path:
    """``directory`` holding each config as ``<name>.yaml``; the directory."""
    directory.mkdir(exist_ok=True)
    for config in configs:
        path = directory / f"{config['name']}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return directory
