"""Does one misbehaving canary hold up another? A healthy 1 s-step canary's on-time ticks while
others' scrape targets hang or stream a huge body.

    .venv/bin/python bench/isolation.py [--hanging 50] [--stream-mb 400] [--seconds 30]

One process, loopback only, the daemon's real parts on the real clock: SQLite store, fleet,
scheduler (its fetch deadline as the daemon sets it), the embedded scrape source on an
allow-listed session with the daemon's body cap. Targets:

- ``healthy``: a baseline and a canary exporter (prometheus_client registries) whose request
  counters rise every second;
- ``--hanging`` canaries whose targets accept the connection and never answer;
- one canary whose target streams ``--stream-mb`` MB of exposition text as fast as it can.

Every canary has the same 1 s-step config (error rate as a count, a kill-switch). For
``--seconds`` the scheduler runs; the process's RSS is sampled every 0.25 s. It prints the
healthy canary's ticks and how many started on time (within half a step of their grid slot),
the worst lateness, the peak RSS, and how the hanging and streaming canaries' ticks ended.
Targets: ≥ 95 % on time, peak RSS ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    # Run as bench/isolation.py: bench/judges.py would shadow the judges package; the
    # repository root serves both the packages and bench.* instead.
    sys.path[0] = str(_HERE.parent)

from bench.loopback import HOST, serve  # noqa: E402

from analyzer.clock import SystemClock  # noqa: E402
from analyzer.configs.catalog import Catalog  # noqa: E402
from analyzer.configs.judgeconfig import parse_config  # noqa: E402
from analyzer.model import Side, Stage  # noqa: E402
from analyzer.net.connector import outbound_session  # noqa: E402
from analyzer.net.policy import AllowList  # noqa: E402
from analyzer.settings import Settings  # noqa: E402
from analyzer.sources.scrape import ScrapeSource  # noqa: E402
from analyzer.store.sqlite import SqliteStore  # noqa: E402
from analyzer.telemetry import Telemetry  # noqa: E402
from analyzer.tick.fleet import Fleet, Registration  # noqa: E402
from analyzer.tick.scheduler import Scheduler  # noqa: E402

CONFIG = {
    "name": "isolation",
    "step": "1s",
    "analysis_interval": "10s",
    "warmup": "0s",
    "groups": {"errors": 100},
    "metrics": [
        {
            "name": "error_rate",
            "group": "errors",
            "kind": "count",
            "judge": "mann-whitney",
            "direction": "increase",
            "query": {
                "events": 'sum(increase(http_requests_total{code=~"5..",${selector}}[${step}]))',
                "exposure": "sum(increase(http_requests_total{${selector}}[${step}]))",
            },
        }
    ],
    "kill_switch": [{"metric": "error_rate", "max": 0.2, "min_exposure": 10}],
}
CHUNK = b"# filler line of a huge exposition, never a sample\n" * 20_000  # about 1 MB


class Targets:
    """The exporters: healthy pods, hanging ones, one streaming a huge body."""

    def __init__(self, stream_mb: int) -> None:
        self.registries = {side: CollectorRegistry() for side in ("baseline", "canary")}
        self.requests = {
            side: Counter("http_requests_total", "Requests.", ["code"], registry=registry)
            for side, registry in self.registries.items()
        }
        self.stream_bytes = stream_mb * 1_000_000
        self.streamed = 0
        self._never = asyncio.Event()

    def serve_traffic(self) -> None:
        """One second of traffic on both healthy pods: 100 requests, 1 error."""
        for counter in self.requests.values():
            counter.labels("200").inc(99)
            counter.labels("500").inc(1)

    async def healthy(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registries[request.match_info["side"]])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def hang(self, _request: web.Request) -> web.Response:
        await self._never.wait()
        return web.Response()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
        await response.prepare(request)
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < self.stream_bytes:
                await response.write(CHUNK)
                sent += len(CHUNK)
                self.streamed += len(CHUNK)
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthy/{side}/metrics", self.healthy)
        app.router.add_get("/hang/{n}/metrics", self.hang)
        app.router.add_get("/stream/metrics", self.stream)
        return app

    def release(self) -> None:
        self._never.set()


def rss_mb() -> float:
    """The process's resident set now (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(args: argparse.Namespace) -> None:
    settings = Settings()
    targets = Targets(args.stream_mb)
    runner, port = await serve(targets.app())
    base = f"http://{HOST}:{port}"
    clock = SystemClock()
    telemetry = Telemetry()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "isolation.db"))
        await store.open()
        timeout = aiohttp.ClientTimeout(total=settings.source_timeout_s)
        allowed = AllowList.of([f"{HOST}:{port}"])
        session = outbound_session(allowed, what="scrape", timeout=timeout)
        source = ScrapeSource(
            session,
            timeout_s=args.timeout,
            max_concurrency=settings.max_concurrency,
            max_bytes=settings.scrape_max_bytes,
            allowed_hosts=allowed,
            clock=clock,
        )
        catalog = Catalog(store, clock)
        version = await catalog.put(parse_config(CONFIG))
        fleet = Fleet(store, catalog, clock, telemetry, public_url="http://canaryd.bench")
        scheduler = Scheduler(
            fleet,
            source,
            clock,
            max_concurrency=settings.max_concurrency,
            fetch_timeout_s=2 * args.timeout + 1.0,
        )
        fleet.on_change = scheduler.poke

        async def register(name: str, baseline: str, canary: str) -> str:
            registered = await fleet.register(
                Registration(
                    name=name,
                    service="bench",
                    config_hash=version.hash,
                    config_name="isolation",
                    baseline=Side(labels={"deployment": f"{name}-b"}, targets=(baseline,)),
                    canary=Side(labels={"deployment": f"{name}-c"}, targets=(canary,)),
                    stages=(Stage(weight=10, duration_s=3600), Stage(weight=100, duration_s=0)),
                    webhook_url=None,
                )
            )
            return registered.id

        healthy = await register(
            "healthy", f"{base}/healthy/baseline/metrics", f"{base}/healthy/canary/metrics"
        )
        hanging = [
            await register(f"hang{k}", f"{base}/hang/{k}/metrics", f"{base}/hang/{k}b/metrics")
            for k in range(args.hanging)
        ]
        streaming = await register(
            "stream", f"{base}/healthy/baseline/metrics", f"{base}/stream/metrics"
        )
        stop = asyncio.Event()
        loop = asyncio.create_task(scheduler.run(stop))
        peak = rss_mb()
        start_rss = peak
        for k in range(int(args.seconds * 4)):
            if k % 4 == 0:
                targets.serve_traffic()
            await asyncio.sleep(0.25)
            peak = max(peak, rss_mb())
        ended = clock.now()
        stop.set()
        targets.release()
        await asyncio.wait_for(loop, timeout=4 * args.timeout + 5)
        result = await measure(store, healthy, hanging, streaming, ended)
        await source.close()
        await session.close()
        await store.close()
    await runner.cleanup()
    report(args, targets, result, start_rss, peak)


async def measure(
    store: SqliteStore, healthy: str, hanging: list[str], streaming: str, ended: float
) -> dict[str, Any]:
    """The healthy canary's ticks against its 1 s grid up to ``ended``: a slot is on time when
    a tick started within half a step after it (ticks start at or after their slot)."""
    canary = await store.get_canary(healthy)
    assert canary is not None
    anchor = canary.analysis_started_at or canary.created_at
    ticks = [t for t in await store.list_ticks(healthy) if anchor < t.at <= ended]
    lateness = {int(t.at - anchor): (t.at - anchor) % 1.0 for t in ticks}  # slot → lateness
    hung = [t for cid in hanging[:3] for t in await store.list_ticks(cid)]
    return {
        "ticks": len(ticks),
        "slots": int(ended - anchor),
        "on_time": sum(x <= 0.5 for x in lateness.values()),
        "worst": max(lateness.values(), default=0.0),
        "hung_reasons": sorted({t.reason.split(":")[0] + ": …" for t in hung[1:]}),
        "stream_ticks": await store.list_ticks(streaming),
    }


def report(
    args: argparse.Namespace, targets: Targets, r: dict[str, Any], start_rss: float, peak: float
) -> None:
    """Print the figures."""
    print(
        f"{args.hanging} hanging canaries, one streaming {args.stream_mb} MB per scrape "
        f"({targets.streamed / 1e6:.0f} MB written over all its scrapes, each cut at the cap), "
        f"{args.seconds:g} s, source timeout {args.timeout:g} s"
    )
    slots = r["slots"]
    print(
        f"healthy 1 s-step canary: {r['ticks']} ticks for {slots} slots, {r['on_time']} on time "
        f"({100 * r['on_time'] / max(1, slots):.1f} %; target ≥ 95 %), "
        f"worst lateness {r['worst']:.2f} s"
    )
    print(f"RSS: {start_rss:.0f} MB at start, peak {peak:.0f} MB (target ≤ 300 MB)")
    print(f"hanging canaries' ticks end as: {r['hung_reasons'] or ['(none yet)']}")
    stream = r["stream_ticks"]
    last = stream[-1].reason[:120] if stream else "(none)"
    print(f"streaming canary: {len(stream)} ticks; last: {last!r}")


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hanging", type=int, default=50)
    parser.add_argument("--stream-mb", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=2.0, help="source timeout, seconds")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
