"""How many canaries one daemon process ticks on time: tick lag, CPU and RSS against fleet size.

    python bench/scale.py                                   # 100 … 2000 canaries, 15 s steps
    python bench/scale.py --sizes 100,500 --step 5 --ticks 4   # a quick run

A fake Prometheus (``bench/fake_prometheus.py``) runs in its own process. Each fleet size runs
in a fresh child process — so RSS and CPU belong to that size alone — with the daemon's real
components: ``SqliteStore`` in a temporary directory, ``Catalog``, ``Fleet``, ``Scheduler`` on
the real ``SystemClock`` and the real ``PrometheusSource`` over one ``ClientSession``, logging
one JSON line per tick as the daemon does (to a temporary file). N canaries of a 5-metric config
(2 ``count`` + 3 ``series``; Mann-Whitney and threshold; a kill-switch) are registered through
``Fleet.register``, spread over one step as a real fleet's would be, with stages long enough
that none finishes. After one step for all of them to start, ``--ticks`` steps are measured:

- lag: how late a batch started after its canaries were due (what ``canaryd_tick_lag_seconds``
  observes), and done: due → the batch's decisions recorded; p50/p99 over every tick;
- CPU seconds per wall second of the child (all threads), CPU milliseconds per tick, the
  seconds per second the child's event-loop thread waited for a CPU (``runqw``: other
  processes on the machine; high values mean the figures measure the machine, not canaryd),
  and the fake Prometheus' CPU seconds per second;
- RSS now and at peak (VmRSS, VmHWM), and source errors (fetches that did not return data).

``--phases`` adds where the longest batch's time went: fetch, judge+decide (the worker thread,
lifecycle, logging) and record (the store transactions). The measurement wraps
``Scheduler.tick_batch``, ``Fleet.commit`` and the source's ``fetch`` in subclasses and a
wrapper; no analyzer code is changed. ``--profile FILE`` writes the child's cProfile stats
(event-loop thread only) to ``FILE.<size>``.
Sizes stop early once lag p99 exceeds ``--give-up-lag-s``. The last line names the largest
size with lag p99 ≤ ``--max-lag-s`` and RSS ≤ ``--max-rss-mb``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import structlog

# Run as a script, bench/ heads sys.path and bench/judges.py would shadow the judges package.
if str(Path(__file__).resolve().parent) in sys.path:
    sys.path.remove(str(Path(__file__).resolve().parent))

from analyzer.clock import SystemClock
from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import parse_config
from analyzer.logs import configure_logging
from analyzer.model import Canary, Delivery, Phase, Side, Stage, Tick, Window
from analyzer.sources.prometheus import PrometheusSource
from analyzer.sources.protocol import FetchRequest
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet, Registration
from analyzer.tick.lifecycle import Step, interval_index
from analyzer.tick.scheduler import Due, Scheduler

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent

BENCH_CONFIG: dict[str, Any] = {
    "name": "bench-five-metrics",
    "step": "15s",
    "analysis_interval": "1m",
    "score_thresholds": {"pass": 75, "marginal": 50},
    "groups": {"errors": 40, "latency": 40, "saturation": 20},
    "metrics": [
        {
            "name": "error_rate",
            "group": "errors",
            "kind": "count",
            "judge": "mann-whitney",
            "direction": "increase",
            "effect_size": {"allowed_increase": 1.5, "critical_increase": 3.0},
            "query": {
                "events": 'sum(increase(http_requests_total{code=~"5..",${selector}}[${step}]))',
                "exposure": "sum(increase(http_requests_total{${selector}}[${step}]))",
            },
        },
        {
            "name": "slow_requests",
            "group": "latency",
            "kind": "count",
            "judge": "threshold",
            "threshold": {"max_increase": 0.05, "min_exposure": 100},
            "query": {
                "events": "sum(increase(http_request_duration_seconds_count{${selector}}[${step}]))"
                ' - sum(increase(http_request_duration_seconds_bucket{le="0.5",${selector}}'
                "[${step}]))",
                "exposure": "sum(increase(http_request_duration_seconds_count{${selector}}"
                "[${step}]))",
            },
        },
        {
            "name": "latency_p99",
            "group": "latency",
            "kind": "series",
            "judge": "mann-whitney",
            "direction": "increase",
            "effect_size": {"allowed_increase": 1.2},
            "query": "histogram_quantile(0.99, sum by (le) "
            "(rate(http_request_duration_seconds_bucket{${selector}}[${step}])))",
        },
        {
            "name": "cpu",
            "group": "saturation",
            "kind": "series",
            "judge": "mann-whitney",
            "direction": "increase",
            "effect_size": {"allowed_increase": 1.3},
            "query": "avg(process_cpu_usage{${selector}})",
        },
        {
            "name": "memory",
            "group": "saturation",
            "kind": "series",
            "judge": "threshold",
            "threshold": {"max_ratio": 1.5},
            "query": "avg(process_memory_usage{${selector}})",
        },
    ],
    "kill_switch": [
        {"metric": "error_rate", "max": 0.05, "min_exposure": 100},
        {"metric": "latency_p99", "max_increase": 1.0},
    ],
}

STAGES = ((10.0, 86_400.0), (50.0, 86_400.0), (100.0, 0.0))  # (weight, seconds): none finishes


# -- the parent: fake Prometheus, one child per size, the table ------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"fake prometheus exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp,  # noqa: S310 — loopback
        ):
            if resp.status == 200:
                return
        time.sleep(0.1)
    sys.exit(f"fake prometheus not ready within {timeout_s:g}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _child_args(args: argparse.Namespace, size: int, url: str, fake_pid: int) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(size),
        "--prometheus",
        url,
        "--fake-pid",
        str(fake_pid),
        "--step",
        str(args.step),
        "--ticks",
        str(args.ticks),
        "--age-steps",
        str(args.age_steps),
        "--max-concurrency",
        str(args.max_concurrency),
        *(["--profile", args.profile] if args.profile else []),
    ]


def _run_size(args: argparse.Namespace, size: int, url: str, fake_pid: int) -> dict[str, Any]:
    budget = args.step * (args.ticks + 4) + size * 0.05 + 120
    with tempfile.NamedTemporaryFile("w+b", prefix="canaryd-scale-", suffix=".log") as log:
        child = subprocess.Popen(  # noqa: S603 — our own script with our own arguments
            _child_args(args, size, url, fake_pid), stdout=subprocess.PIPE, stderr=log
        )
        try:
            out, _ = child.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            _stop(child)
            return {"size": size, "error": f"no result within {budget:.0f}s"}
        finally:
            _stop(child)
        if child.returncode != 0 or not out.strip():
            log.seek(0)
            tail = log.read().decode(errors="replace").splitlines()[-15:]
            return {"size": size, "error": f"exit {child.returncode}: " + " | ".join(tail)}
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['size']:>6}  failed: {r['error']}"
    return (
        f"{r['size']:>6} {r['ticks']:>7} {r['lag_p50_s']:>8.3f} {r['lag_p99_s']:>8.3f} "
        f"{r['done_p50_s']:>8.3f} {r['done_p99_s']:>8.3f} {r['batch_max_s']:>8.2f} "
        f"{r['cpu_per_s']:>6.2f} {r['cpu_ms_per_tick']:>6.1f} {r['runq_wait_per_s']:>6.2f} "
        f"{r['fake_cpu_per_s']:>6.2f} "
        f"{r['rss_mb']:>7.0f} "
        f"{r['rss_peak_mb']:>7.0f} {r['source_errors']:>6} {r['finished']:>5}"
    )


def _phase_row(r: dict[str, Any]) -> str:
    if "error" in r or not r["longest"]:
        return ""
    lo, busy = r["longest"], r["busy"]
    return (
        f"{'':>6}   longest batch {r['batch_max_size']} canaries: fetch {lo['fetch_s']:.2f}s, "
        f"judge+decide {lo['judge_s']:.2f}s, record {lo['record_s']:.2f}s; loop busy (s/s): "
        f"fetch {busy['fetch']:.2f}, judge+decide {busy['judge']:.2f}, record {busy['record']:.2f}"
    )


HEADER = (
    "  size   ticks  lag p50  lag p99 done p50 done p99 batchmax    cpu ms/tck  runqw   fake"
    "  rss MB  peak MB srcerr  done"
)


def parent(args: argparse.Namespace) -> int:
    """Start the fake Prometheus, run every size in a child, print the table."""
    port = free_port()
    fake = subprocess.Popen(  # noqa: S603 — our own script
        [
            sys.executable,
            str(HERE / "fake_prometheus.py"),
            "--port",
            str(port),
            "--delay-ms",
            str(args.fake_delay_ms),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{HOST}:{port}"
    results = []
    try:
        _wait_ready(url, fake)
        print(
            f"canaryd scale bench: step {args.step:g}s, {args.ticks} measured steps, "
            f"age {args.age_steps} steps, fake Prometheus at {url} (pid {fake.pid})"
        )
        print(HEADER, flush=True)
        for size in args.sizes:
            result = _run_size(args, size, url, fake.pid)
            results.append(result)
            print(_row(result), flush=True)
            if args.phases and _phase_row(result):
                print(_phase_row(result), flush=True)
            if "error" in result or result["lag_p99_s"] > args.give_up_lag_s:
                print(f"stopping: lag p99 above {args.give_up_lag_s:g}s or a failure")
                break
    finally:
        _stop(fake)
    ok = [
        r["size"]
        for r in results
        if "error" not in r and r["lag_p99_s"] <= args.max_lag_s and r["rss_mb"] <= args.max_rss_mb
    ]
    best = max(ok, default=0)
    print(
        f"largest fleet with lag p99 ≤ {args.max_lag_s:g}s and RSS ≤ {args.max_rss_mb:g} MB: "
        f"{best or 'none'}"
    )
    return 0


# -- the child: one fleet size in-process --------------------------------------------------
def _proc_kb(field: str, pid: str = "self") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runq_wait_s() -> float:
    """Time the event loop's thread spent runnable but waiting for a CPU (other processes)."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentiles(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


class TimedSource:
    """The real source, noting when each fetch began and ended (for the batch's fetch phase)."""

    def __init__(self, inner: PrometheusSource) -> None:
        self.inner = inner
        self.first_start = math.inf
        self.last_end = -math.inf

    async def fetch(self, request: FetchRequest) -> Window:
        """The inner fetch, timed."""
        started = time.perf_counter()
        try:
            return await self.inner.fetch(request)
        finally:
            self.first_start = min(self.first_start, started)
            self.last_end = max(self.last_end, time.perf_counter())

    def forget(self, canary_id: str) -> None:
        """The inner source forgets the canary."""
        self.inner.forget(canary_id)

    async def close(self) -> None:
        """Close the inner source."""
        await self.inner.close()


class MeasuredFleet(Fleet):
    """The fleet, adding up the time its commits (one store transaction each) take."""

    record_s = 0.0

    async def commit(
        self, before: Canary, step: Step, tick: Tick, delivery: Delivery | None
    ) -> Canary:
        """The real commit, timed."""
        started = time.perf_counter()
        try:
            return await super().commit(before, step, tick, delivery)
        finally:
            self.record_s += time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Batch:
    """One wake-up: how many canaries, and where its time went (seconds)."""

    size: int
    total: float
    fetch: float
    record: float

    @property
    def judge(self) -> float:
        """The rest: judging in the worker thread, deciding, logging, telemetry."""
        return max(0.0, self.total - self.fetch - self.record)


class MeasuredScheduler(Scheduler):
    """The scheduler, recording for every tick how late its batch started and finished."""

    source: TimedSource
    fleet: MeasuredFleet

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.lag: list[float] = []
        self.done: list[float] = []
        self.batches: list[Batch] = []

    async def tick_batch(self, batch: Sequence[Due], now: float) -> None:
        """The real batch, then its canaries' lateness at start and at the end."""
        self.source.first_start, self.source.last_end = math.inf, -math.inf
        record_before, started = self.fleet.record_s, time.perf_counter()
        await super().tick_batch(batch, now)
        total = time.perf_counter() - started
        finished = self.clock.now()
        self.lag.extend(now - item.due_at for item in batch)
        self.done.extend(finished - item.due_at for item in batch)
        fetch = max(0.0, self.source.last_end - self.source.first_start)
        record = self.fleet.record_s - record_before
        self.batches.append(Batch(size=len(batch), total=total, fetch=fetch, record=record))

    def reset(self) -> None:
        """Forget what was recorded so far."""
        self.lag.clear()
        self.done.clear()
        self.batches.clear()


async def child(args: argparse.Namespace) -> dict[str, Any]:
    """Run one fleet size with the real components; the figures as a dict."""
    configure_logging("info", json=True)
    size, step = args.child, args.step
    config_body = {**BENCH_CONFIG, "step": f"{step:g}s", "analysis_interval": f"{4 * step:g}s"}
    clock = SystemClock()
    telemetry = Telemetry()
    with tempfile.TemporaryDirectory(prefix="canaryd-scale-") as tmp:
        store = SqliteStore(str(Path(tmp) / "canaryd.db"))
        await store.open()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0))
        source = TimedSource(
            PrometheusSource(
                args.prometheus, session, timeout_s=10.0, max_concurrency=args.max_concurrency
            )
        )
        catalog = Catalog(store, clock)
        version = await catalog.put(parse_config(config_body))
        fleet = MeasuredFleet(store, catalog, clock, telemetry, public_url="http://127.0.0.1:8080")
        scheduler = MeasuredScheduler(fleet, source, clock, max_concurrency=args.max_concurrency)
        fleet.on_change = scheduler.poke
        stop = asyncio.Event()
        runner = asyncio.create_task(scheduler.run(stop), name="scheduler")
        try:
            started = time.monotonic()
            for i in range(size):
                await fleet.register(_registration(i, version.hash))
                await asyncio.sleep(max(0.0, started + step * (i + 1) / size - time.monotonic()))
            register_s = time.monotonic() - started
            await asyncio.sleep(step)  # every canary has started its analysis
            if args.age_steps:
                _age(fleet, args.age_steps * step, clock.now())
            scheduler.reset()
            errors_before = _source_errors(telemetry)
            cpu0, fake0, wall0 = _self_cpu_s(), _proc_cpu_s(args.fake_pid), time.monotonic()
            wait0 = _runq_wait_s()
            await asyncio.sleep(step * args.ticks)
            wall = time.monotonic() - wall0
            cpu, fake_cpu = _self_cpu_s() - cpu0, _proc_cpu_s(args.fake_pid) - fake0
            runq_wait = _runq_wait_s() - wait0
            lag, done = list(scheduler.lag), list(scheduler.done)
            batches = list(scheduler.batches)
        finally:
            stop.set()
            await asyncio.wait_for(runner, timeout=60)
            await session.close()
            await store.close()
    structlog.reset_defaults()
    lag50, lag99 = _percentiles(lag)
    done50, done99 = _percentiles(done)
    return {
        "size": size,
        "step_s": step,
        "ticks": len(lag),
        "register_s": round(register_s, 2),
        "lag_p50_s": lag50,
        "lag_p99_s": lag99,
        "done_p50_s": done50,
        "done_p99_s": done99,
        "batches": len(batches),
        **_phases(batches, wall),
        "cpu_per_s": cpu / wall,
        "fake_cpu_per_s": fake_cpu / wall,
        "runq_wait_per_s": runq_wait / wall,
        "cpu_ms_per_tick": 1000 * cpu / max(1, len(lag)),
        "rss_mb": _proc_kb("VmRSS") / 1024,
        "rss_peak_mb": _proc_kb("VmHWM") / 1024,
        "source_errors": _source_errors(telemetry) - errors_before,
        "finished": size - len(fleet.canaries),
    }


def _phases(batches: Sequence[Batch], wall: float) -> dict[str, Any]:
    """The longest batch and its phases; each phase's share of the wall time over all."""
    if not batches:
        return {"batch_max_s": 0.0, "batch_max_size": 0, "longest": {}, "busy": {}}
    longest = max(batches, key=lambda b: b.total)
    return {
        "batch_max_s": longest.total,
        "batch_max_size": longest.size,
        "longest": {"fetch_s": longest.fetch, "judge_s": longest.judge, "record_s": longest.record},
        "busy": {
            "fetch": sum(b.fetch for b in batches) / wall,
            "judge": sum(b.judge for b in batches) / wall,
            "record": sum(b.record for b in batches) / wall,
        },
    }


def _registration(i: int, config_hash: str) -> Registration:
    service = f"svc-{i:05d}"
    return Registration(
        name=f"{service}-canary",
        service=service,
        config_hash=config_hash,
        config_name=BENCH_CONFIG["name"],
        baseline=Side(labels={"deployment": f"{service}-baseline"}),
        canary=Side(labels={"deployment": f"{service}-canary"}),
        stages=tuple(Stage(weight=w, duration_s=d) for w, d in STAGES),
        webhook_url=None,
        body={"bench": True},
    )


def _age(fleet: Fleet, seconds: float, now: float) -> None:
    """Pretend every canary's analysis began ``seconds`` earlier (in memory only): windows as
    long as a canary's mid-stage ones, without waiting for them."""
    for cid, canary in list(fleet.canaries.items()):
        if canary.phase is not Phase.RUNNING or canary.analysis_started_at is None:
            continue
        config = fleet.catalog.cached(canary.config_hash)
        aged = dataclasses.replace(
            canary,
            analysis_started_at=canary.analysis_started_at - seconds,
            stage_started_at=canary.stage_started_at - seconds,
        )
        fleet.canaries[cid] = dataclasses.replace(
            aged, intervals_scored=interval_index(aged, config, now)
        )


def _source_errors(telemetry: Telemetry) -> int:
    total = 0.0
    for family in telemetry.source_errors.collect():
        total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return int(total)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="canaryd scale benchmark")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 250, 500, 1000, 2000],
        help="fleet sizes, comma-separated",
    )
    parser.add_argument("--step", type=float, default=15.0, help="judge config step, seconds")
    parser.add_argument("--ticks", type=int, default=5, help="steps measured per size")
    parser.add_argument(
        "--age-steps",
        type=int,
        default=0,
        help="pretend analysis began this many steps earlier (longer windows)",
    )
    parser.add_argument("--max-concurrency", type=int, default=256, help="as CANARYD_MAX_...")
    parser.add_argument("--max-lag-s", type=float, default=1.0)
    parser.add_argument("--max-rss-mb", type=float, default=500.0)
    parser.add_argument("--give-up-lag-s", type=float, default=10.0)
    parser.add_argument("--fake-delay-ms", type=float, default=0.0, help="fake query latency")
    parser.add_argument(
        "--phases", action="store_true", help="also print where the longest batch's time went"
    )
    parser.add_argument("--profile", default="", help="child: write cProfile stats here")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prometheus", default="", help=argparse.SUPPRESS)
    parser.add_argument("--fake-pid", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    """Parent or child, by the arguments."""
    args = _parse()
    if not args.child:
        return parent(args)
    if args.profile:
        import cProfile  # noqa: PLC0415

        profiler = cProfile.Profile()
        result = profiler.runcall(asyncio.run, child(args))
        profiler.dump_stats(f"{args.profile}.{args.child}")
    else:
        result = asyncio.run(child(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
