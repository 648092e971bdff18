"""The scale benchmark's child: one fleet size in-process with the daemon's real components.

``python bench/scale.py --child N ...`` runs :func:`child`: ``SqliteStore`` in a temporary
directory, ``Catalog``, ``Fleet``, ``Scheduler`` on the real ``SystemClock`` and the real
``PrometheusSource`` (wrapped to time themselves, :mod:`bench.scale_measure`), N canaries of
:data:`BENCH_CONFIG` registered over one step, then ``--ticks`` steps measured.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from bench.scale_measure import (
    Batch,
    MeasuredFleet,
    MeasuredScheduler,
    TimedSource,
    percentiles,
    proc_cpu_s,
    proc_kb,
    runq_wait_s,
    self_cpu_s,
)

from analyzer.clock import SystemClock
from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import parse_config
from analyzer.logs import configure_logging
from analyzer.model import Phase, Side, Stage
from analyzer.sources.prometheus import PrometheusSource
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet, Registration
from analyzer.tick.lifecycle import interval_index

__all__ = ["BENCH_CONFIG", "child"]

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
            cpu0, fake0, wall0 = self_cpu_s(), proc_cpu_s(args.fake_pid), time.monotonic()
            wait0 = runq_wait_s()
            await asyncio.sleep(step * args.ticks)
            wall = time.monotonic() - wall0
            cpu, fake_cpu = self_cpu_s() - cpu0, proc_cpu_s(args.fake_pid) - fake0
            runq_wait = runq_wait_s() - wait0
            lag, done = list(scheduler.lag), list(scheduler.done)
            batches = list(scheduler.batches)
        finally:
            stop.set()
            await asyncio.wait_for(runner, timeout=60)
            await session.close()
            await store.close()
    structlog.reset_defaults()
    lag50, lag99 = percentiles(lag)
    done50, done99 = percentiles(done)
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
        "rss_mb": proc_kb("VmRSS") / 1024,
        "rss_peak_mb": proc_kb("VmHWM") / 1024,
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
