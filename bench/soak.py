"""Soak: one daemon for a long run, canaries registering and finishing all the time.

    python bench/soak.py                          # 10 minutes
    python bench/soak.py --minutes 3 --sample-s 10

Three processes. The fake Prometheus (``bench/fake_prometheus.py``) answers every range query.
The daemon is this file with ``--child``: ``canaryd serve``'s own code path (settings from
CANARYD_* variables, ``Daemon(settings).serve()``, JSON logs) plus a sampler task in the same
event loop that writes, every ``--sample-s``, the process's RSS, live asyncio tasks, open file
descriptors, threads and gc-tracked objects. This driver hosts a flaky webhook receiver (a
share of 503s, and of requests held past the daemon's webhook timeout) and keeps ``--live``
canaries registered over the HTTP API: a third with a kill-switch that always trips (rolled
back at the first poll), the rest judged over a 3 s stage (promoted, or rolled back when
inconclusive); a tenth dry-run; a tenth aborted over the API a second after registering.
Finished canaries are replaced at once.

Each row: elapsed time, the daemon's RSS, tasks, fds, threads and gc objects, the canaries the
daemon holds in memory (and the scheduler's per-canary entries, read through gc — a probe, no
analyzer code is changed), registrations and finishes so far, webhook attempts (acknowledged /
503 / held past the timeout) and the outbox by state. The summary compares the samples after
the warm-up: the target is no growth of RSS, tasks, fds or threads. The database grows by
design (every tick is recorded) and is reported for scale. The daemon is stopped with SIGTERM
at the end and its exit code printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yaml
from aiohttp import web

# Run as a script, bench/ heads sys.path and bench/judges.py would shadow the judges package.
if str(Path(__file__).resolve().parent) in sys.path:
    sys.path.remove(str(Path(__file__).resolve().parent))

from analyzer.demo.simulator import ERROR_RATIO_QUERY, LATENCY_P99_QUERY

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
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


# -- the daemon: `canaryd serve` plus a sampler ---------------------------------------------
def _status_kb(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return -1


def _sample(daemon: Any, scheduler_type: type) -> dict[str, Any]:
    fleet = getattr(daemon.ctx, "fleet", None)
    live = len(getattr(fleet, "canaries", {}))
    schedulers = [o for o in gc.get_objects() if isinstance(o, scheduler_type)]
    return {
        "t": time.monotonic(),
        "rss_kb": _status_kb("VmRSS"),
        "hwm_kb": _status_kb("VmHWM"),
        "threads": _status_kb("Threads"),
        "fds": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
        "gc_objects": len(gc.get_objects()),
        "live": live,
        "sched": sum(len(s._next_due) for s in schedulers),  # a probe of the scheduler's state
    }


async def _sampler(daemon: Any, path: Path, every_s: float, stop: asyncio.Event) -> None:
    from analyzer.tick.scheduler import Scheduler  # noqa: PLC0415 — the child's imports only

    with path.open("a", encoding="utf-8") as out:
        while not stop.is_set():
            out.write(json.dumps(_sample(daemon, Scheduler)) + "\n")
            out.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


async def child(samples: Path, every_s: float) -> int:
    """What ``canaryd serve`` runs, with the sampler beside it in the same loop."""
    from analyzer.daemon import Daemon  # noqa: PLC0415
    from analyzer.logs import configure_logging  # noqa: PLC0415
    from analyzer.settings import load_settings  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_level)
    daemon = Daemon(settings)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(_sampler(daemon, samples, every_s, stop))
        try:
            code = await daemon.serve()
        finally:
            stop.set()
    return code


# -- the driver: flaky receiver, registrations, the table -------------------------------------
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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
                    print(_row(sample, rows[0]["t"], self.fleet, hooks, _outbox(db)), flush=True)
                await asyncio.sleep(0.25)
        return rows


def _new_samples(path: Path, seen: int) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines[seen:] if line.strip()]


def _outbox(db: Path) -> dict[str, int]:
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


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    async with aiohttp.ClientSession() as client:
        for _ in range(300):
            if proc.poll() is not None:
                sys.exit(f"{what} exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with client.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    sys.exit(f"{what} not ready within 30s")


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _write_configs(directory: Path) -> None:
    directory.mkdir()
    for config in (PASS_CONFIG, KILL_CONFIG):
        path = directory / f"{config['name']}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")


def _daemon_env(tmp: Path, ports: Ports, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARYD_")}
    return env | {
        "CANARYD_LISTEN": f"{HOST}:{ports.daemon}",
        "CANARYD_DATABASE_URL": f"sqlite:///{tmp}/soak.db",
        "CANARYD_PROMETHEUS_URL": f"http://{HOST}:{ports.prometheus}",
        "CANARYD_API_TOKENS": token,
        "CANARYD_WEBHOOK_SECRET": token[::-1],
        "CANARYD_WEBHOOK_ALLOWED_HOSTS": f"{HOST}:{ports.hooks}",
        "CANARYD_WEBHOOK_TIMEOUT_S": f"{WEBHOOK_TIMEOUT_S:g}",
        "CANARYD_WEBHOOK_MAX_BACKOFF_S": "2",
        "CANARYD_WEBHOOK_GIVE_UP_S": "120",
        "CANARYD_CONFIG_DIR": str(tmp / "configs"),
        "CANARYD_SHUTDOWN_GRACE_S": "5",
        "CANARYD_LOG_LEVEL": "info",
    }


@dataclass
class Ports:
    """Where everything listens."""

    daemon: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)
    hooks: int = field(default_factory=free_port)


def _spawn(tmp: Path, ports: Ports, token: str, sample_s: float) -> list[subprocess.Popen[bytes]]:
    """The fake Prometheus and the daemon (this script with --child), in that order."""
    fake = subprocess.Popen(  # noqa: S603 — our own script
        [sys.executable, str(HERE / "fake_prometheus.py"), "--port", str(ports.prometheus)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with (tmp / "canaryd.log").open("wb") as log:
        daemon = subprocess.Popen(  # noqa: S603 — this script as the daemon
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                str(tmp / "samples.jsonl"),
                "--sample-s",
                str(sample_s),
            ],
            stdout=log,
            stderr=log,
            env=_daemon_env(tmp, ports, token),
        )
    return [fake, daemon]


def _report(tmp: Path, tally: Tally, hooks: Hooks, code: int) -> str:
    db_mb = sum(p.stat().st_size for p in tmp.glob("soak.db*")) / 2**20
    return (
        f"canaries registered {tally.registered}, finished {tally.finished}, aborted "
        f"{tally.aborted}, refused {tally.refused}; webhooks acknowledged {hooks.ok} "
        f"({len(hooks.acknowledged)} distinct ids), 503 {hooks.unavailable}, held "
        f"{hooks.held}, bad signatures {hooks.bad_signature}; outbox "
        f"{_outbox(tmp / 'soak.db')}; database {db_mb:.1f} MB; daemon exit code after "
        f"SIGTERM {code}"
    )


async def parent(args: argparse.Namespace) -> int:
    """Start the fake Prometheus, the receiver and the daemon; drive; print the summary."""
    with tempfile.TemporaryDirectory(prefix="canaryd-soak-") as tmp_name:
        tmp, ports, token = Path(tmp_name), Ports(), os.urandom(16).hex()
        _write_configs(tmp / "configs")
        hooks = Hooks(secret=token[::-1], rng=random.Random(args.seed + 1))
        hook_app = web.Application()
        hook_app.router.add_post("/hooks", hooks.hook)
        hook_runner = web.AppRunner(hook_app, access_log=None)
        await hook_runner.setup()
        await web.TCPSite(hook_runner, HOST, ports.hooks).start()
        fake, daemon = _spawn(tmp, ports, token, args.sample_s)
        api = f"http://{HOST}:{ports.daemon}"
        driver = Driver(args, api, token, f"http://{HOST}:{ports.hooks}/hooks")
        rows: list[dict[str, Any]] = []
        try:
            await _wait_ready(f"http://{HOST}:{ports.prometheus}/-/ready", fake, "fake prometheus")
            await _wait_ready(f"{api}/readyz", daemon, "canaryd")
            print(
                f"canaryd soak: {args.minutes:g} min, {args.live} live canaries, sample every "
                f"{args.sample_s:g}s, daemon pid {daemon.pid}, files in {tmp}"
            )
            print(HEADER, flush=True)
            rows = await driver.run(hooks, tmp / "samples.jsonl", tmp / "soak.db")
        finally:
            code = await asyncio.to_thread(_stop, daemon)
            await asyncio.to_thread(_stop, fake)
            await hook_runner.cleanup()
        for line in summary(rows, args.warmup_s):
            print(line)
        print(_report(tmp, driver.fleet, hooks, code))
    return 0 if code == 0 else 1


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="canaryd soak test (not in CI)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument("--live", type=int, default=40, help="canaries kept live")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="not judged for growth")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    """Driver, or with --child the daemon under test."""
    args = _parse()
    if args.child is not None:
        return asyncio.run(child(args.child, args.sample_s))
    return asyncio.run(parent(args))


if __name__ == "__main__":
    sys.exit(main())
