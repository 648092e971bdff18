"""The soak's driver: its judge configs, the flaky webhook receiver, the fleet it keeps topped up
over the HTTP API, and the rows and summary it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from analyzer.demo.simulator import ERROR_RATIO_QUERY, LATENCY_P99_QUERY

__all__ = [
    "HEADER",
    "KILL_CONFIG",
    "PASS_CONFIG",
    "WEBHOOK_TIMEOUT_S",
    "Driver",
    "Hooks",
    "Tally",
    "outbox",
    "summary",
]

WEBHOOK_TIMEOUT_S = 2.0
TERMINAL = ("promoted", "rolled_back", "aborted", "failed")
LIVE_PHASES = ("pending", "warmup", "running", "paused")

PASS_CONFIG: dict[str, Any] = {
    "name": "soak-judged",
    "step": "1s",
    "analysis_interval": "3s",
    "on_inconclusive": "rollback",
    "groups": {"errors": 50, "latency": 50},
    "metrics": [
        {
            "name": "error_rate",
            "group": "errors",
            "kind": "count",
            "judge": "mann-whitney",
            "direction": "increase",
            "effect_size": {"allowed_increase": 1.5},
            "query": ERROR_RATIO_QUERY,
        },
        {
            "name": "latency_p99",
            "group": "latency",
            "kind": "series",
            "judge": "mann-whitney",
            "direction": "increase",
            "effect_size": {"allowed_increase": 1.2},
            "query": LATENCY_P99_QUERY,
        },
    ],
    "kill_switch": [{"metric": "error_rate", "max_ratio": 5.0, "min_exposure": 100}],
}
# The fake answers ~5 errors in ~3000 requests a step: a 0.05 % line always trips.
KILL_CONFIG: dict[str, Any] = {
    **PASS_CONFIG,
    "name": "soak-kill-switch",
    "kill_switch": [{"metric": "error_rate", "max": 0.0005, "min_exposure": 100}],
}
STAGES = [{"weight": 25, "duration": "3s"}, {"weight": 100, "duration": "0s"}]


@dataclass
class Hooks:
    """The flaky webhook receiver's counts."""

    secret: str
    rng: random.Random
    ok: int = 0
    unavailable: int = 0
    held: int = 0
    bad_signature: int = 0
    acknowledged: set[str] = field(default_factory=set)

    async def hook(self, request: web.Request) -> web.Response:
        """POST /hooks: 15 % 503, 5 % held past the daemon's timeout, else verify and 204."""
        body = await request.read()
        roll = self.rng.random()
        if roll < 0.15:
            self.unavailable += 1
            return web.Response(status=503)
        if roll < 0.20:
            self.held += 1
            await asyncio.sleep(WEBHOOK_TIMEOUT_S + 1.0)
            return web.Response(status=204)
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(
            f"sha256={digest}", request.headers.get("X-Canaryd-Signature-256", "")
        ):
            self.bad_signature += 1
            return web.Response(status=401)
        self.ok += 1
        self.acknowledged.add(request.headers.get("X-Canaryd-Delivery", ""))
        return web.Response(status=204)


@dataclass
class Tally:
    """The driver's view of the canaries it registered."""

    live: dict[str, float] = field(default_factory=dict)
    abort_at: dict[str, float] = field(default_factory=dict)
    registered: int = 0
    finished: int = 0
    refused: int = 0
    aborted: int = 0


def _registration(n: int, hook_url: str, rng: random.Random) -> dict[str, Any]:
    service = f"svc-{n % 50:02d}"
    live = rng.random() >= 0.1
    body: dict[str, Any] = {
        "name": f"soak-{n}",
        "service": service,
        "config": KILL_CONFIG["name"] if rng.random() < 1 / 3 else PASS_CONFIG["name"],
        "baseline": {"labels": {"deployment": f"{service}-baseline"}},
        "canary": {"labels": {"deployment": f"{service}-canary"}},
        "stages": STAGES,
        "mode": "live" if live else "dry-run",
    }
    if live:
        body["webhook"] = {"url": hook_url}
    return body


class Driver:
    """Keeps the fleet topped up and prints the samples."""

    def __init__(self, args: argparse.Namespace, api: str, token: str, hook_url: str) -> None:
        self.args, self.api, self.hook_url = args, api, hook_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = random.Random(args.seed)
        self.fleet = Tally()

    async def top_up(self, client: aiohttp.ClientSession) -> None:
        """Register until --live canaries are live; abort those due; abort paused ones."""
        now = time.monotonic()
        while len(self.fleet.live) < self.args.live:
            body = _registration(self.fleet.registered, self.hook_url, self.rng)
            async with client.post(f"{self.api}/api/v1/canaries", json=body) as resp:
                created = await resp.json()
            if resp.status != 201:
                self.fleet.refused += 1
                return
            self.fleet.registered += 1
            self.fleet.live[created["id"]] = now
            if self.rng.random() < 0.1:
                self.fleet.abort_at[created["id"]] = now + 1.0
        for cid, when in list(self.fleet.abort_at.items()):
            if when <= now:
                await self._abort(client, cid)

    async def _abort(self, client: aiohttp.ClientSession, cid: str) -> None:
        self.fleet.abort_at.pop(cid, None)
        async with client.post(f"{self.api}/api/v1/canaries/{cid}/abort", json={}) as resp:
            if resp.status == 200:
                self.fleet.aborted += 1

    async def reap(self, client: aiohttp.ClientSession) -> None:
        """Forget finished canaries (not in any live phase); abort paused ones."""
        live: set[str] = set()
        for phase in LIVE_PHASES:
            async with client.get(f"{self.api}/api/v1/canaries?phase={phase}") as resp:
                listed = await resp.json()
            live |= {c["id"] for c in listed}
            if phase == "paused":
                for c in listed:
                    await self._abort(client, c["id"])
        for cid in list(self.fleet.live):
            if cid not in live:
                del self.fleet.live[cid]
                self.fleet.abort_at.pop(cid, None)
                self.fleet.finished += 1

    async def run(self, hooks: Hooks, samples: Path, db: Path) -> list[dict[str, Any]]:
        """Drive for --minutes, printing a row per sample; the samples."""
        rows: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.args.minutes * 60
        async with aiohttp.ClientSession(headers=self.headers) as client:
            while time.monotonic() < deadline:
                await self.top_up(client)
                await self.reap(client)
                for sample in _new_samples(samples, len(rows)):
                    rows.append(sample)
                    print(_row(sample, rows[0]["t"], self.fleet, hooks, outbox(db)), flush=True)
                await asyncio.sleep(0.25)
        return rows


def _new_samples(path: Path, seen: int) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines[seen:] if line.strip()]


def outbox(db: Path) -> dict[str, int]:
    """Outbox rows by state, read over a read-only connection beside the daemon's."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}
    return {str(state): int(n) for state, n in rows}


HEADER = (
    "  time  rss MB tasks   fds thr  gc objs  live sched   reg  done  abrt "
    " hooks ok/503/held   outbox pend/dlv/fail"
)


def _row(s: dict[str, Any], t0: float, fleet: Tally, hooks: Hooks, outbox: dict[str, int]) -> str:
    elapsed = s["t"] - t0
    return (
        f"{int(elapsed // 60):3d}:{int(elapsed % 60):02d} {s['rss_kb'] / 1024:7.1f} "
        f"{s['tasks']:5d} {s['fds']:5d} {s['threads']:3d} {s['gc_objects']:8d} {s['live']:5d} "
        f"{s['sched']:5d} {fleet.registered:5d} {fleet.finished:5d} {fleet.aborted:5d} "
        f"{hooks.ok:7d}/{hooks.unavailable}/{hooks.held:<5d}"
        f"{outbox.get('pending', 0):8d}/{outbox.get('delivered', 0)}/{outbox.get('failed', 0)}"
    )


def _slope_per_min(ts: np.ndarray, ys: np.ndarray) -> float:
    if len(ts) < 2 or np.ptp(ts) == 0:
        return 0.0
    return float(np.polyfit(ts / 60.0, ys, 1)[0])


def summary(rows: list[dict[str, Any]], warmup_s: float) -> list[str]:
    """Growth of each figure after the warm-up: first, last, min, max and slope."""
    if not rows:
        return ["no samples"]
    t0 = rows[0]["t"]
    after = [r for r in rows if r["t"] - t0 >= warmup_s] or rows[-1:]
    ts = np.array([r["t"] - t0 for r in after])
    lines = [f"after the warm-up ({warmup_s:g}s), {len(after)} samples over {np.ptp(ts):.0f}s:"]
    for key, scale, unit in (
        ("rss_kb", 1 / 1024, "MB"),
        ("tasks", 1, ""),
        ("fds", 1, ""),
        ("threads", 1, ""),
        ("gc_objects", 1, ""),
        ("sched", 1, ""),
    ):
        ys = np.array([r[key] * scale for r in after], dtype=np.float64)
        lines.append(
            f"  {key:<10} first {ys[0]:9.1f}  last {ys[-1]:9.1f}  min {ys.min():9.1f}  "
            f"max {ys.max():9.1f}  slope {_slope_per_min(ts, ys):+8.2f}{unit}/min"
        )
    lines.append(f"  peak RSS (VmHWM) {rows[-1]['hwm_kb'] / 1024:.1f} MB")
    return lines
