"""Soak: one daemon for a long run, canaries registering and finishing all the time.

    python bench/soak.py                          # 10 minutes
    python bench/soak.py --minutes 3 --sample-s 10

Three processes. The fake Prometheus (``bench/fake_prometheus.py``) answers every range query.
The daemon is this file with ``--child`` (``bench/soak_daemon.py``): ``canaryd serve``'s own
code path (settings from CANARYD_* variables, ``Daemon(settings).serve()``, JSON logs) plus a
sampler task in the same event loop that writes, every ``--sample-s``, the process's RSS, live
asyncio tasks, open file descriptors, threads and gc-tracked objects. This driver
(``bench/soak_driver.py``) hosts a flaky webhook receiver (a
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
import os
import random
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    # Run as bench/soak.py: bench/ heads sys.path and bench/judges.py would shadow the judges
    # package; the repository root serves both the packages and bench.* instead.
    sys.path[0] = str(_HERE.parent)

import yaml  # noqa: E402
from bench.loopback import HOST, on_fresh_port, serve  # noqa: E402
from bench.soak_daemon import child  # noqa: E402
from bench.soak_driver import (  # noqa: E402
    HEADER,
    KILL_CONFIG,
    PASS_CONFIG,
    WEBHOOK_TIMEOUT_S,
    Driver,
    Hooks,
    Tally,
    outbox,
    summary,
)


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


@dataclass
class Ports:
    """Where everything listens."""

    hooks: int
    prometheus: int = 0
    daemon: int = 0


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


def _spawn(tmp: Path, ports: Ports, token: str, sample_s: float) -> list[subprocess.Popen[bytes]]:
    """The fake Prometheus and the daemon (this script with --child), in that order, each on
    a fresh port and ready."""

    def fake_on(port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 — our own script
            [sys.executable, str(_HERE / "fake_prometheus.py"), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    fake, ports.prometheus = on_fresh_port(
        fake_on, lambda port: f"http://{HOST}:{port}/-/ready", "fake prometheus"
    )

    def daemon_on(port: int) -> subprocess.Popen[bytes]:
        ports.daemon = port
        with (tmp / "canaryd.log").open("wb") as log:
            return subprocess.Popen(  # noqa: S603 — this script as the daemon
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

    try:
        daemon, _ = on_fresh_port(daemon_on, lambda port: f"http://{HOST}:{port}/readyz", "canaryd")
    except BaseException:
        _stop(fake)
        raise
    return [fake, daemon]


def _report(tmp: Path, tally: Tally, hooks: Hooks, code: int) -> str:
    db_mb = sum(p.stat().st_size for p in tmp.glob("soak.db*")) / 2**20
    return (
        f"canaries registered {tally.registered}, finished {tally.finished}, aborted "
        f"{tally.aborted}, refused {tally.refused}; webhooks acknowledged {hooks.ok} "
        f"({len(hooks.acknowledged)} distinct ids), 503 {hooks.unavailable}, held "
        f"{hooks.held}, bad signatures {hooks.bad_signature}; outbox "
        f"{outbox(tmp / 'soak.db')}; database {db_mb:.1f} MB; daemon exit code after "
        f"SIGTERM {code}"
    )


async def parent(args: argparse.Namespace) -> int:
    """Start the receiver, the fake Prometheus and the daemon; drive; print the summary."""
    with tempfile.TemporaryDirectory(prefix="canaryd-soak-") as tmp_name:
        tmp, token = Path(tmp_name), os.urandom(16).hex()
        _write_configs(tmp / "configs")
        hooks = Hooks(secret=token[::-1], rng=random.Random(args.seed + 1))
        hook_app = web.Application()
        hook_app.router.add_post("/hooks", hooks.hook)
        hook_runner, hook_port = await serve(hook_app)
        ports = Ports(hooks=hook_port)
        try:
            fake, daemon = await asyncio.to_thread(_spawn, tmp, ports, token, args.sample_s)
        except BaseException:
            await hook_runner.cleanup()
            raise
        api = f"http://{HOST}:{ports.daemon}"
        driver = Driver(args, api, token, f"http://{HOST}:{ports.hooks}/hooks")
        rows: list[dict[str, Any]] = []
        try:
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
