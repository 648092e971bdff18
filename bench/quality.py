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

- sequential A/A false rollbacks ≤ 5 % (each Poisson A/A scenario and i.i.d. latency), bursty
  A/A ≤ 10 %; for AR(1) gauges at ρ = 0.6 and 0.8 (``gauge`` configs: tolerance 1 ms,
  Kayenta-style every 10 minutes) and sparse negative-binomial counts over 240 looks also the
  upper end of the 95 % interval ≤ 7 %;
- a +30 ms shift under AR(1) ρ = 0.6, 20 ms noise: detected in ≥ 90 % of 120-step runs;
- 3× errors from the first step at 50 req/s per arm and 0.1 % errors: detected in ≥ 90 %, median
  ≤ 3.5 minutes;
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


def _metric(name: str, judge: str, **extra: Any) -> dict[str, Any]:
    kind = "count" if name == "error_rate" else "series"
    query = ERROR_RATIO_QUERY if kind == "count" else LATENCY_P99_QUERY
    return {"name": name, "kind": kind, "judge": judge, "direction": "increase"} | {
        "critical": True,
        "query": query,
        **extra,
    }


def _configs() -> dict[str, dict[str, Any]]:
    gauge = _COMMON | {"analysis_interval": "10m"}
    return {
        "sequential/errors": _COMMON
        | {"metrics": [_metric("error_rate", "sequential-count", tolerance=1.2)]},
        "kayenta/errors": _COMMON | {"metrics": [_metric("error_rate", "mann-whitney")]},
        "sequential/latency": _COMMON
        | {"metrics": [_metric("latency_p99", "sequential-mean", tolerance=0.010)]},
        "kayenta/latency": _COMMON | {"metrics": [_metric("latency_p99", "mann-whitney")]},
        # The gauge families of issue 10: tolerance 1 ms, Kayenta-style every 10 minutes.
        "sequential/gauge": gauge
        | {"metrics": [_metric("latency_p99", "sequential-mean", tolerance=0.001)]},
        "kayenta/gauge": gauge | {"metrics": [_metric("latency_p99", "mann-whitney")]},
    }


CONFIGS = {key: {"name": "bench-" + key.replace("/", "-")} | c for key, c in _configs().items()}


@dataclass(frozen=True)
class Scenario:
    """A named family of recordings and the metric its two configs judge."""

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    metric: str = "errors"


_FROM_START = {"rps": 50.0, "error_rate": 0.001, "onset_step": 0}
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
    # Issue 10: serial dependence, sparse bursts, overlapping windows, speed from the start.
    Scenario("3x errors from the start, 50 req/s, 0.1 %", "errors", _FROM_START),
    Scenario("A/A sparse NB, 240 steps", "sparse_nb"),
    Scenario("A/A gamma-Poisson k=1, 120 steps", "gamma_poisson"),
    Scenario("3x errors, gamma-Poisson k=1", "gamma_poisson", {"ratio": 3.0, "onset_step": 10}),
    Scenario("A/A overlapping windows", "overlap"),
    Scenario("A/A overlapping windows, p99", "overlap", {}, "latency"),
    *(Scenario(f"A/A AR(1) rho=0.{r}", f"ar1_0{r}", {}, "gauge") for r in "368"),
    *(Scenario(f"+30 ms AR(1) rho=0.{r}", f"ar1_0{r}_shift", {}, "gauge") for r in "368"),
]

# What the targets check: scenario → the sequential config's bound on false rollbacks, and
# whether the upper end of the 95 % interval must stay ≤ 7 % too.
FALSE_ROLLBACK_TARGETS = {
    "A/A 50 req/s": (0.05, False),
    "A/A 200 req/s": (0.05, False),
    "A/A 0.2 req/s, 1 % errors": (0.05, False),
    "A/A zero errors, 5 req/s": (0.05, False),
    "A/A diurnal load": (0.05, False),
    "A/A missing steps + outage": (0.05, False),
    "A/A latency": (0.05, False),
    "A/A bursty (gamma k=2)": (0.10, False),
    "A/A sparse NB, 240 steps": (0.05, True),
    "A/A AR(1) rho=0.6": (0.05, True),
    "A/A AR(1) rho=0.8": (0.05, True),
}
# scenario → (least power, greatest median minutes to detect or None).
POWER_TARGETS = {
    "+30 ms AR(1) rho=0.6": (0.90, None),
    "3x errors from the start, 50 req/s, 0.1 %": (0.90, 3.5),
    "zero-error baseline, 5 req/s": (0.90, None),
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
    first = f"{n} recordings per scenario of 60 s steps (60; AR(1), gamma-Poisson 120; NB 240)"
    lines = [first + ", onset at step 10 unless late or from the start", head]
    lines.append("-" * (len(head) + 50))
    lines += [f"{name:<{width}}  {seq:<{middle}}  {kay}" for name, seq, kay in rows]
    return "\n".join(lines)


def _check(ok: bool, text: str) -> str:
    return f"  [{'met ' if ok else 'MISS'}] {text}"


def _sequential(results: dict[str, dict[str, Result]], name: str) -> Summary | None:
    row = results.get(name)
    return None if row is None else next(r.summary for k, r in row.items() if "sequential" in k)


def targets(results: dict[str, dict[str, Result]]) -> list[str]:
    """The must-show targets at α = 0.05, each marked met or MISS with its figure."""
    lines = []
    for name, (bound, tight) in FALSE_ROLLBACK_TARGETS.items():
        s = _sequential(results, name)
        if s is None or s.false_rollback_rate is None:
            continue
        rate, (lo, hi) = s.false_rollback_rate, s.false_rollback_ci or (0.0, 0.0)
        text = f"sequential {name}: false rollbacks {_pct(rate)} (95 % CI {_pct(lo)}–{_pct(hi)})"
        ok = rate <= bound and (not tight or hi <= 0.07)
        lines.append(_check(ok, f"{text} ≤ {bound:.0%}" + (", upper ≤ 7 %" if tight else "")))
    for name, (power, minutes) in POWER_TARGETS.items():
        s = _sequential(results, name)
        if s is None or s.power is None:
            continue
        ttd = s.median_minutes_to_detect
        ok = s.power >= power and (minutes is None or (ttd is not None and ttd <= minutes))
        text = f"sequential {name}: detected {_pct(s.power)} ≥ {power:.0%}"
        if minutes is not None:
            text += f", median {'-' if ttd is None else f'{ttd:g}'} min ≤ {minutes:g}"
        lines.append(_check(ok, text))
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
