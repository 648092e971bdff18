"""How many canaries one daemon process ticks on time: tick lag, CPU and RSS against fleet size.

    python bench/scale.py                                   # 100 … 2000 canaries, 15 s steps
    python bench/scale.py --sizes 100,500 --step 5 --ticks 4   # a quick run

A fake Prometheus (``bench/fake_prometheus.py``) runs in its own process. Each fleet size runs
in a fresh child process (``bench/scale_child.py``, measured by ``bench/scale_measure.py``) —
so RSS and CPU belong to that size alone — with the daemon's real components: ``SqliteStore``
in a temporary directory, ``Catalog``, ``Fleet``, ``Scheduler`` on the real ``SystemClock`` and
the real ``PrometheusSource`` over one ``ClientSession``, logging one JSON line per tick as the
daemon does (to a temporary file). N canaries of a 5-metric config (2 ``count`` + 3 ``series``;
Mann-Whitney and threshold; a kill-switch) are registered through ``Fleet.register``, spread
over one step as a real fleet's would be, with stages long enough that none finishes. After one
step for all of them to start, ``--ticks`` steps are measured:

- lag: how late a batch started after its canaries were due (what ``canaryd_tick_lag_seconds``
  observes), and done: due → the batch's decisions recorded; p50/p99 over every tick;
- CPU seconds per wall second of the child (all threads), CPU milliseconds per tick, the
  seconds per second the child's event-loop thread waited for a CPU (``runqw``: other
  processes on the machine; high values mean the figures measure the machine, not canaryd),
  and the fake Prometheus' CPU seconds per second;
- RSS now and at peak (VmRSS, VmHWM), and source errors (fetches that did not return data).

``--phases`` adds where the longest batch's time went: fetch, judge+decide (the worker thread,
lifecycle, logging) and record (the store transactions). The measurement wraps
``Scheduler.tick``, ``Fleet.commit`` and the source's ``fetch`` in subclasses and a wrapper
(a wake-up's ticks, one task each, are its batch); no analyzer code is changed.
``--profile FILE`` writes the child's cProfile stats (event-loop thread only) to ``FILE.<size>``.
Sizes stop early once lag p99 exceeds ``--give-up-lag-s``. The last line names the largest
size with lag p99 ≤ ``--max-lag-s`` and RSS ≤ ``--max-rss-mb``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    # Run as bench/scale.py: bench/ heads sys.path and bench/judges.py would shadow the judges
    # package; the repository root serves both the packages and bench.* instead.
    sys.path[0] = str(_HERE.parent)

from bench.loopback import HOST, on_fresh_port  # noqa: E402
from bench.scale_child import child  # noqa: E402


# -- the parent: fake Prometheus, one child per size, the table ------------------------------
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


def _fake_prometheus(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], int]:
    """The fake Prometheus on a fresh port, ready."""

    def spawn(port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 — our own script
            [
                sys.executable,
                str(_HERE / "fake_prometheus.py"),
                "--port",
                str(port),
                "--delay-ms",
                str(args.fake_delay_ms),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    return on_fresh_port(
        spawn, lambda port: f"http://{HOST}:{port}/-/ready", "fake prometheus", timeout_s=20.0
    )


def parent(args: argparse.Namespace) -> int:
    """Start the fake Prometheus, run every size in a child, print the table."""
    fake, port = _fake_prometheus(args)
    url = f"http://{HOST}:{port}"
    results = []
    try:
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
