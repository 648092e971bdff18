"""Judgements per second of the Mann-Whitney classification at n = m = 60.

Ours: ``judges.classify_stacked`` on B×60 arrays — p-value, the exact shift interval and the
Hodges–Lehmann estimate, effect size and label for every row. Against: a loop of
``scipy.stats.mannwhitneyu(method="asymptotic")`` calls on the same rows, which computes the
p-value only. The two sides run interleaved, several times, in one process; medians are printed.
For context it also times forming and sorting all 3,600 pairwise differences of every row —
what an exact interval costs done the obvious way (the selection in
``judges.mannwhitney.orderstats`` avoids it).

    .venv/bin/python bench/judges.py [--rows 3000] [--repeats 7] [--seed 20261129]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
from scipy import stats

N = 60


def _import_judges() -> ModuleType:
    """The judges package, not this file: run as a script, bench/ heads sys.path and this
    module's name would shadow the package."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    return importlib.import_module("judges")


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Latency-like samples (seconds, rounded to the millisecond, so with ties); a tenth of the
    canary rows are 15 % slower."""
    rng = np.random.default_rng(seed)
    control = rng.lognormal(np.log(0.2), 0.3, (rows, N))
    experiment = rng.lognormal(np.log(0.2), 0.3, (rows, N))
    experiment[: rows // 10] *= 1.15
    return np.round(experiment, 3), np.round(control, 3)


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000, help="judgements per timed run (B)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each side")
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args()

    judges = _import_judges()
    classify_stacked, high_label = judges.classify_stacked, judges.Label.HIGH
    experiment, control = _data(args.rows, args.seed)
    options = judges.MannWhitneyOptions()

    def ours() -> list[object]:
        return list(classify_stacked(experiment, control, options))

    def scipy_loop() -> list[float]:
        return [
            float(stats.mannwhitneyu(x, y, method="asymptotic").pvalue)
            for x, y in zip(experiment, control, strict=True)
        ]

    # Warm up both, and check they agree on the p-values before timing anything.
    judged = classify_stacked(experiment, control, options)
    pvalues = scipy_loop()
    worst = max(
        abs(j.test.p_value - p) for j, p in zip(judged, pvalues, strict=True) if j.test is not None
    )
    high = sum(j.label is high_label for j in judged)

    def sort_all() -> None:
        diffs = np.empty((experiment.shape[0], N * N))
        np.subtract(experiment[:, :, None], control[:, None, :], out=diffs.reshape(-1, N, N))
        diffs.sort(axis=1)

    ours_s: list[float] = []
    scipy_s: list[float] = []
    sort_s: list[float] = []
    for _ in range(args.repeats):
        ours_s.append(_timed(ours))
        scipy_s.append(_timed(scipy_loop))
        sort_s.append(_timed(sort_all))

    ours_med, scipy_med = statistics.median(ours_s), statistics.median(scipy_s)
    print(f"rows B = {args.rows}, n = m = {N}, repeats = {args.repeats}, seed = {args.seed}")
    print(f"labels: {high} High of {args.rows} (a tenth of the rows are 15 % slower)")
    print(f"max |p(ours) − p(scipy)| = {worst:.3g}")
    print(
        f"judges.classify_stacked (p, interval, estimate, label): "
        f"{args.rows / ours_med:12,.0f} judgements/s  (median {ours_med * 1e3:8.1f} ms)"
    )
    print(
        f"scipy.stats.mannwhitneyu loop (p only):                 "
        f"{args.rows / scipy_med:12,.0f} judgements/s  (median {scipy_med * 1e3:8.1f} ms)"
    )
    sort_med = statistics.median(sort_s)
    print(
        f"(for context: forming and sorting all {N * N:,} differences of every row takes "
        f"{sort_med / args.rows * 1e6:.1f} µs a row, ours {ours_med / args.rows * 1e6:.1f} µs "
        f"in all, scipy {scipy_med / args.rows * 1e6:.1f} µs)"
    )
    print(f"ratio: {scipy_med / ours_med:.1f}x")


if __name__ == "__main__":
    main()
