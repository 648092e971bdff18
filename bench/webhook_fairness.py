"""How long a healthy canary's promote webhook waits while other canaries' receivers hang.

    .venv/bin/python bench/webhook_fairness.py [--hanging 64] [--timeout 2] [--repeats 3]

One process, loopback only: ``--hanging`` receivers (each its own server, so each its own
destination) accept the POST and never answer; one healthy receiver answers 200 at once. Each
hanging canary has a step decision in the outbox; once all their attempts are in flight, a
healthy canary's promote is recorded, and the time from that record to its arrival at the
healthy receiver is the delay. Two dispatcher settings run side by side, interleaved,
``--repeats`` times each:

- **fair**: the daemon's defaults (64 attempts in flight in all, 4 per receiver, suspects last);
- **before**: the earlier policy (16 attempts in flight in all, oldest first, no cap per
  receiver).

It prints each run's delay and the median of each, with the attempt timeout for scale (the
target: the fair delay at most one attempt timeout + 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    # Run as bench/webhook_fairness.py: bench/judges.py would shadow the judges package; the
    # repository root serves both the packages and bench.* instead.
    sys.path[0] = str(_HERE.parent)

from bench.loopback import HOST, serve  # noqa: E402

from analyzer.clock import SystemClock  # noqa: E402
from analyzer.model import Action, Canary, Decision, Phase, Side, Stage  # noqa: E402
from analyzer.store.sqlite import SqliteStore  # noqa: E402
from analyzer.webhooks.dispatcher import WebhookDispatcher  # noqa: E402
from analyzer.webhooks.message import make_delivery  # noqa: E402

SETTINGS = {
    "fair": {"max_concurrency": 64, "per_destination": 4},
    "before": {"max_concurrency": 16, "per_destination": 16},
}


class Receivers:
    """The hanging receivers and the healthy one."""

    def __init__(self) -> None:
        self.hung = 0
        self.arrived: dict[str, float] = {}
        self._never = asyncio.Event()
        self.runners: list[web.AppRunner] = []

    async def hang(self, request: web.Request) -> web.Response:
        await request.read()
        self.hung += 1
        await self._never.wait()
        return web.Response(status=200)

    async def answer(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrived[request.headers["X-Canaryd-Delivery"]] = time.perf_counter()
        return web.Response(status=200)

    async def start(self, handler: Callable[[web.Request], Awaitable[web.Response]]) -> str:
        """Serve ``handler`` on its own port; its hook URL."""
        app = web.Application()
        app.router.add_post("/hook", handler)
        runner, port = await serve(app)
        self.runners.append(runner)
        return f"http://{HOST}:{port}/hook"

    async def close(self) -> None:
        self._never.set()
        for runner in self.runners:
            await runner.cleanup()


async def decide(store: SqliteStore, canary_id: str, url: str, action: Action) -> float:
    """Store a live canary and one decision with its outbox row; when it was recorded."""
    now = time.time()
    canary = Canary(
        id=canary_id,
        name=canary_id,
        service="bench",
        config_name="bench",
        config_hash="ab" * 32,
        baseline=Side(labels={"deployment": "b"}),
        canary=Side(labels={"deployment": "c"}),
        stages=(Stage(weight=5.0, duration_s=60.0), Stage(weight=100.0, duration_s=0.0)),
        webhook_url=url,
        created_at=now,
        stage_started_at=now,
    )
    await store.create_canary(canary, {})
    decision = Decision(
        canary_id=canary_id,
        seq=1,
        action=action,
        reason="bench",
        score=90.0,
        stage_index=0,
        weight=100.0 if action is Action.PROMOTE else 5.0,
        decided_at=now,
        phase_after=Phase.PROMOTED if action is Action.PROMOTE else Phase.RUNNING,
    )
    after = replace(canary, decision_seq=1)
    delivery = make_delivery(after, decision, f"http://canaryd.bench/{canary_id}", now)
    await store.save_decision(after, decision, delivery, expected_decision_seq=0)
    return time.perf_counter()


async def one_run(name: str, hanging: int, timeout_s: float, run: int) -> float:
    """The healthy promote's delay (seconds) under one setting."""
    receivers = Receivers()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "bench.db"))
        await store.open()
        async with aiohttp.ClientSession() as session:
            dispatcher = WebhookDispatcher(
                store,
                session,
                SystemClock(),
                secret="bench",  # noqa: S106 — the benchmark's own signing key
                allowed_hosts=[HOST],
                timeout_s=timeout_s,
                rng=random.Random(run),
                **SETTINGS[name],
            )
            stop = asyncio.Event()
            try:
                for k in range(hanging):
                    url = await receivers.start(receivers.hang)
                    await decide(store, f"hung-{k}", url, Action.STEP)
                healthy = await receivers.start(receivers.answer)
                task = asyncio.create_task(dispatcher.run(stop, poll_s=0.5))
                limit = min(hanging, SETTINGS[name]["max_concurrency"])
                for _ in range(200):  # until every slot the hanging ones can take is taken
                    if receivers.hung >= limit:
                        break
                    await asyncio.sleep(0.05)
                recorded = await decide(store, "healthy", healthy, Action.PROMOTE)
                for _ in range(int(20 * (hanging / 4 + 2) * timeout_s)):
                    if "healthy:1" in receivers.arrived:
                        break
                    await asyncio.sleep(0.05)
                arrived = receivers.arrived.get("healthy:1", float("nan"))
            finally:
                stop.set()
                await receivers.close()
            await task
        await store.close()
    return arrived - recorded


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hanging", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=2.0, help="attempt timeout, seconds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    delays: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for run in range(args.repeats):
        for name in SETTINGS:
            delay = await one_run(name, args.hanging, args.timeout, run)
            delays[name].append(delay)
            print(f"run {run + 1} {name:<7} promote delay {delay:6.2f} s")
    print(f"\n{args.hanging} hanging receivers, attempt timeout {args.timeout:g} s")
    for name, values in delays.items():
        settings = SETTINGS[name]
        print(
            f"{name:<7} ({settings['max_concurrency']} in flight, {settings['per_destination']} "
            f"per receiver): median delay {statistics.median(values):6.2f} s"
        )
    ratio = statistics.median(delays["before"]) / statistics.median(delays["fair"])
    print(f"before / fair: {ratio:.1f}×  (target: fair ≤ timeout + 1 s = {args.timeout + 1:g} s)")


if __name__ == "__main__":
    asyncio.run(main())
