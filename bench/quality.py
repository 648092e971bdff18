"""Backtest quality: a sequential config against a Kayenta-style one, on the same recordings.

Every scenario below is ``--n`` seeded recordings from ``bench/scenarios.py`` (one hour at 60 s
steps), each replayed through ``analyzer.offline.backtest.backtest`` — the daemon's own evaluate /
next_step on a stepped clock, one stage spanning the recording — under two configs:

- **sequential**: ``error_rate`` judged by ``sequential-count`` on every poll (critical,
  tolerance 1.2, α = 0.05); a proven regression rolls back at once, proven non-inferiority
  may promote early at an interval boundary;
- **kayenta**: ``error_rate`` judged by Kayenta's Mann-Whitney on the per-step ratio
  events/exposure (critical, tolerance 0.25, 98 % confidence), scored every 5-minute
  analysis interval over the window since the start.

The latency scenario uses the same pair on ``latency_p99`` (``sequential-mean`` with a 10 ms
tolerance against Mann-Whitney). Per scenario it prints the false-rollback rate of A/A runs with
its 95 % Wilson interval, the power (share of regressions rolled back at or after the onset),
the median minutes from onset to rollback, and how the A/A runs ended; then checks the targets:

- sequential A/A false rollbacks ≤ 5 % (each Poisson A/A scenario), bursty A/A ≤ 10 %;
- 3× error rate at 50 req/s per arm: detected in ≥ 95 %, median time to detect ≤ 0.67× the
  Kayenta-style config's;
- a regression from a zero-error baseline at 5 req/s: detected in ≥ 90 %.

    .venv/bin/python -m bench.quality [--n 300] [--seed 20261129] [--jobs 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    # Run as bench/quality.py: bench/ heads sys.path and bench/judges.py would shadow the judges
    # package; the repository root serves both the packages and bench.scenarios instead.
    sys.path[0] = str(_HERE.parent)

from bench.scenarios import generate  # noqa: E402

from analyzer.configs.judgeconfig import JudgeConfig, parse_config  # noqa: E402
from analyzer.demo.simulator import ERROR_RATIO_QUERY, LATENCY_P99_QUERY  # noqa: E402
from analyzer.offline.backtest import BacktestOutcome, BacktestVerdict, Summary, backtest, summarize  # noqa: E402
from analyzer.offline.recording import parse_recording  # noqa: E402

_COMMON = {"step": "60s", "analysis_interval": "5m", "alpha": 0.05, "on_inconclusive": "pause"}

CONFIGS: dict[str, dict[str, Any]] = {
    "sequential/errors": _COMMON
    | {
        "name": "bench-sequential-errors",
        "metrics": [
            {
                "name": "error_rate",
                "kind": "count",
                "judge": "sequential-count",
                "direction": "increase",
                "critical": True,
                "tolerance": 1.2,
                "query": ERROR_RATIO_QUERY,
            }
        ],
    },
    "kayenta/errors": _COMMON
    | {
        "name": "bench-kayenta-errors",
        "metrics": [
            {
                "name": "error_rate",
                "kind": "count",
                "judge": "mann-whitney",
                "direction": "increase",
                "critical": True,
                "query": ERROR_RATIO_QUERY,
            }
        ],
    },
    "sequential/latency": _COMMON
    | {
        "name": "bench-sequential-latency",
        "metrics": [
            {
                "name": "latency_p99",
                "kind": "series",
                "judge": "sequential-mean",
                "direction": "increase",
                "critical": True,
                "tolerance": 0.010,
                "query": LATENCY_P99_QUERY,
            }
        ],
    },
    "kayenta/latency": _COMMON
    | {
        "name": "bench-kayenta-latency",
        "metrics": [
            {
                "name": "latency_p99",
                "kind": "series",
                "judge": "mann-whitney",
                "direction": "increase",
                "critical": True,
                "query": LATENCY_P99_QUERY,
            }
        ],
    },
}


@dataclass(frozen=True)
class Scenario:
    """A named family of recordings and the metric its two configs judge."""

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    metric: str = "errors"


SCENARIOS = [
    Scenario("A/A 50 req/s", "aa", {"rps": 50.0}),
    Scenario("A/A 200 req/s", "aa", {"rps": 200.0}),
    Scenario("A/A 0.2 req/s, 1 % errors", "aa", {"rps": 0.2, "error_rate": 0.01}),
    Scenario("A/A zero errors, 5 req/s", "zero_baseline", {"canary_error_rate": 0.0}),
    Scenario("A/A diurnal load", "diurnal"),
    Scenario("A/A bursty (gamma k=2)", "bursty"),
    Scenario("A/A missing steps + outage", "missing"),
    Scenario("3x errors, 0.2 req/s, 1 %", "errors", {"rps": 0.2, "error_rate": 0.01}),
    Scenario("3x errors, 5 req/s", "errors", {"rps": 5.0}),
    Scenario("3x errors, 50 req/s", "errors", {"rps": 50.0}),
    Scenario("3x errors, 200 req/s", "errors", {"rps": 200.0}),
    Scenario("3x errors, bursty", "errors", {"burst_shape": 2.0}),
    Scenario("3x errors, late onset", "late"),
    Scenario("zero-error baseline, 5 req/s", "zero_baseline"),
    Scenario("A/A latency", "aa", {}, "latency"),
    Scenario("latency +30 ms", "latency", {}, "latency"),
]

# What the targets check: scenario → (sequential bound, description).
FALSE_ROLLBACK_TARGETS = {
    "A/A 50 req/s": 0.05,
    "A/A 200 req/s": 0.05,
    "A/A 0.2 req/s, 1 % errors": 0.05,
    "A/A zero errors, 5 req/s": 0.05,
    "A/A diurnal load": 0.05,
    "A/A missing steps + outage": 0.05,
    "A/A bursty (gamma k=2)": 0.10,
}


@dataclass(frozen=True)
class Result:
    """One scenario under one config."""

    outcomes: tuple[BacktestOutcome, ...]
    summary: Summary | None
    seconds: float

    def promoted(self) -> tuple[float, float | None]:
        """Share promoted, and the median minute of promotion."""
        minutes = [
            o.minute
            for o in self.outcomes
            if o.verdict is BacktestVerdict.PROMOTE and o.minute is not None
        ]
        share = len(minutes) / len(self.outcomes) if self.outcomes else 0.0
        return share, statistics.median(minutes) if minutes else None


_PARSED: dict[str, JudgeConfig] = {}


def _config(key: str) -> JudgeConfig:
    if key not in _PARSED:
        _PARSED[key] = parse_config(CONFIGS[key], source=key)
    return _PARSED[key]


def _replay(job: tuple[str, dict[str, Any]]) -> BacktestOutcome:
    key, doc = job
    return backtest(_config(key), parse_recording(doc, source=doc["name"]))


def run(scenario: Scenario, key: str, docs: Sequence[dict[str, Any]], pool: Any) -> Result:
    """Backtest every recording of a scenario under one config."""
    started = time.perf_counter()
    outcomes = tuple(pool.map(_replay, [(key, d) for d in docs], chunksize=8))
    return Result(outcomes, summarize(outcomes), time.perf_counter() - started)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:5.1f} %"


def _promoted_before_onset(result: Result) -> int:
    return sum(
        o.verdict is BacktestVerdict.PROMOTE
        and o.step is not None
        and o.truth is not None
        and o.truth.onset_step is not None
        and o.step < o.truth.onset_step
        for o in result.outcomes
    )


def _cell(result: Result) -> str:
    s = result.summary
    if s is None:
        return "-"
    if s.regressions:
        ttd = s.median_minutes_to_detect
        notes = [f"{s.premature} rolled back", f"{_promoted_before_onset(result)} promoted"]
        before = ", ".join(n for n in notes if not n.startswith("0 "))
        median = "-" if ttd is None else f"{ttd:4.1f}"
        tail = f" ({before} before onset)" if before else ""
        return f"power {_pct(s.power)}  median {median} min{tail}"
    lo, hi = s.false_rollback_ci or (0.0, 0.0)
    share, minute = result.promoted()
    promo = f"promoted {_pct(share)}" + ("" if minute is None else f" @ {minute:4.1f} min")
    return f"false rb {_pct(s.false_rollback_rate)} [{_pct(lo)}, {_pct(hi)}]  {promo}"


def _table(results: dict[str, dict[str, Result]], n: int) -> str:
    rows = []
    for scenario in SCENARIOS:
        row = results.get(scenario.name)
        if row is not None:
            seq, kay = (row[f"{side}/{scenario.metric}"] for side in ("sequential", "kayenta"))
            rows.append((scenario.name, _cell(seq), _cell(kay)))
    width = max([len("scenario"), *(len(r[0]) for r in rows)])
    middle = max([len("sequential"), *(len(r[1]) for r in rows)])
    head = f"{'scenario':<{width}}  {'sequential':<{middle}}  kayenta-style"
    lines = [f"{n} recordings per scenario, 60 steps of 60 s, onset at step 10 unless late", head]
    lines.append("-" * (len(head) + 50))
    lines += [f"{name:<{width}}  {seq:<{middle}}  {kay}" for name, seq, kay in rows]
    return "\n".join(lines)


def _check(ok: bool, text: str) -> str:
    return f"  [{'met ' if ok else 'MISS'}] {text}"


def targets(results: dict[str, dict[str, Result]]) -> list[str]:
    """The must-show targets at α = 0.05, each marked met or MISS with its figure."""
    lines = []
    for name, bound in FALSE_ROLLBACK_TARGETS.items():
        s = results.get(name, {}).get("sequential/errors")
        if s is None or s.summary is None or s.summary.false_rollback_rate is None:
            continue
        rate, ci = s.summary.false_rollback_rate, s.summary.false_rollback_ci or (0.0, 0.0)
        text = f"sequential {name}: false rollbacks {_pct(rate)} (95 % CI {_pct(ci[0])}–"
        lines.append(_check(rate <= bound, f"{text}{_pct(ci[1])}) ≤ {bound:.0%}"))
    errors = results.get("3x errors, 50 req/s")
    if errors:
        seq, kay = errors["sequential/errors"].summary, errors["kayenta/errors"].summary
        if seq is not None and kay is not None and seq.power is not None:
            text = f"3x at 50 req/s detected: {_pct(seq.power)} ≥ 95 %"
            lines.append(_check(seq.power >= 0.95, text))
            st, kt = seq.median_minutes_to_detect, kay.median_minutes_to_detect
            if st is not None and kt:
                text = f"3x at 50 req/s median time to detect: {st:g} min vs kayenta-style "
                lines.append(_check(st <= 0.67 * kt, f"{text}{kt:g} min = {st / kt:.2f}× ≤ 0.67×"))
    zero = results.get("zero-error baseline, 5 req/s")
    if zero:
        seq = zero["sequential/errors"].summary
        if seq is not None and seq.power is not None:
            text = f"zero-error baseline at 5 req/s detected: {_pct(seq.power)} ≥ 90 %"
            lines.append(_check(seq.power >= 0.90, text))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, backtest and print the table and the targets; 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="recordings per scenario")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="NAME",
        help="scenarios whose name contains one of these",
    )
    args = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if not args.only or any(o in s.name for o in args.only)]
    results: dict[str, dict[str, Result]] = {}
    started = time.perf_counter()
    with Pool(args.jobs) as pool:
        for scenario in chosen:
            docs = generate(scenario.family, args.n, args.seed, **scenario.params)
            results[scenario.name] = {
                key: run(scenario, key, docs, pool)
                for key in (f"sequential/{scenario.metric}", f"kayenta/{scenario.metric}")
            }
            took = sum(r.seconds for r in results[scenario.name].values())
            print(f"  {scenario.name}: {took:.1f} s", file=sys.stderr, flush=True)
    print(_table(results, args.n))
    lines = targets(results)
    print("\ntargets (α = 0.05):", *lines, sep="\n")
    print(
        f"\n{len(chosen)} scenarios × 2 configs × {args.n} recordings in "
        f"{time.perf_counter() - started:.0f} s on {args.jobs} processes"
    )
    return 1 if any("[MISS]" in line for line in lines) else 0


if __name__ == "__main__":
    raise SystemExit(main())
