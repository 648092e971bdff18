"""Order statistics of the pairwise differences x_i − y_j without sorting all n·m of them.

The Mann-Whitney interval and estimate are order statistics D₍k₎ of the n·m differences
D = {x_i − y_j}. Sorting them is the obvious way and the slow one (3,600 differences at
n = m = 60). Here, from the two sorted samples of each row:

1. a coarse grid of differences (evenly spaced order statistics of each sample, at most 256,
   one small sort) gives a probe value v near the target rank;
2. the exact count of differences ≤ v and, for each x_i, where its differences cross v, come
   from one merge (:func:`judges.mannwhitney.merges.below`);
3. the WINDOW differences of each x_i nearest v on the target's side (at most 256 per row) are
   formed and sorted; the target is read off unless some x_i might hold more of the ranks in
   play than its window — which each x_i's next difference tells.

Rows the single probe cannot settle (about 1 % per rank on untied data; most rows of heavily
tied data) are finished together, for the whole batch: probing further (stepping by the
measured rank error, then bisecting the grid, with runs of equal differences taken whole),
and where that cannot narrow a row enough, sorting all of its differences. The answer never
depends on the path taken — only the time does; every path equals :func:`full_order_stats`.
"""

from __future__ import annotations

import numpy as np

from judges.arrays import BoolArray, FloatArray, IntArray
from judges.mannwhitney import bracketing
from judges.mannwhitney.merges import Runs, Scratch, SortedPairs, pooled_statistics, prepare_pairs

__all__ = ["chunk_statistics", "full_order_stats", "settle"]

WINDOW = 4
"""Differences per x_i examined next to a single probe (n·WINDOW ≤ 256 keeps the sort fast)."""
_MIN_PAIRS = 400
"""Below this many differences per row a full sort is as cheap as the grid."""


def full_order_stats(xs: FloatArray, ys: FloatArray, ranks: IntArray) -> FloatArray:
    """D₍k₎ for 1-based ranks (B×R) by sorting every difference: the reference the fast path
    must equal, and its fallback."""
    b, n = xs.shape
    diffs = np.empty((b, n * ys.shape[1]))
    np.subtract(xs[:, :, None], ys[:, None, :], out=diffs.reshape(b, n, -1))
    diffs.sort(axis=1)
    return np.asarray(np.take_along_axis(diffs, ranks - 1, axis=1), dtype=np.float64)


def chunk_statistics(
    xs: FloatArray, ys: FloatArray, y_runs: Runs, groups: list[IntArray], scratch: Scratch
) -> tuple[FloatArray, FloatArray, list[FloatArray], BoolArray]:
    """For sorted B×n and B×m samples (a chunk of a few hundred rows): U of the experiment,
    the pooled tie term, D₍k₎ for each group of 1-based ranks (each B×R, a group's ranks
    adjacent) and, per group and row, whether it is still unsettled — to be finished by
    :func:`settle` (values there are undefined). Settled values equal
    :func:`full_order_stats`."""
    b, n = xs.shape
    m = ys.shape[1]
    pairs = prepare_pairs(xs, ys, pad=WINDOW + 1)
    u, tie = pooled_statistics(pairs, y_runs, scratch)
    unsettled = np.zeros((len(groups), b), dtype=bool)
    if n * m < _MIN_PAIRS:
        return u, tie, [full_order_stats(xs, ys, ranks) for ranks in groups], unsettled
    results = [np.empty(ranks.shape) for ranks in groups]
    fast = np.flatnonzero(pairs.scaled)
    unsettled[:, ~pairs.scaled] = True
    part = pairs if fast.size == b else pairs.take(fast)
    grid = bracketing.difference_grid(part.xsc, part.ysc)
    for g, (ranks, out) in enumerate(zip(groups, results, strict=True)):
        found, ok = _windowed(part, grid, ranks[fast], scratch)
        out[fast[ok]] = found[ok]
        unsettled[g, fast[~ok]] = True
    return u, tie, results, unsettled


def settle(
    xs: FloatArray,
    ys: FloatArray,
    groups: list[IntArray],
    results: list[FloatArray],
    unsettled: BoolArray,
) -> None:
    """Finish what :func:`chunk_statistics` left unsettled, for all chunks at once: bracketing
    by several probes, then, for what remains, a full sort."""
    rows = np.flatnonzero(unsettled.any(axis=0))
    if not rows.size:
        return
    pairs = prepare_pairs(xs[rows], ys[rows], pad=WINDOW + 1)
    full = ~pairs.scaled
    fast = np.flatnonzero(pairs.scaled)
    if fast.size:
        part = pairs.take(fast)
        grid = bracketing.difference_grid(part.xsc, part.ysc)
        for g, (ranks, out) in enumerate(zip(groups, results, strict=True)):
            need = np.flatnonzero(unsettled[g, rows[fast]])
            if not need.size:
                continue
            found, ok = bracketing.bracketed(part.take(need), grid[need], ranks[rows[fast[need]]])
            out[rows[fast[need[ok]]]] = found[ok]
            full[fast[need[~ok]]] = True
    if full.any():
        at = rows[full]
        merged = full_order_stats(xs[at], ys[at], np.concatenate([r[at] for r in groups], axis=1))
        first = 0
        for ranks, out in zip(groups, results, strict=True):
            out[at] = merged[:, first : first + ranks.shape[1]]
            first += ranks.shape[1]


def _windowed(
    pairs: SortedPairs, grid: FloatArray, ranks: IntArray, scratch: Scratch
) -> tuple[FloatArray, BoolArray]:
    """One group of ranks from a single probe: the grid value v at the target's share of the
    grid, its exact count C, and for each x_i the WINDOW differences nearest v on the target's
    side (at or below v when C reaches the group, above it otherwise). The target is the
    (C − k + 1)-th largest of those below, or the (k − C)-th smallest of those above, provided
    no x_i has more of them in play than its window holds — checked against each x_i's next
    difference. When C falls between a group's two ranks, the upper one is the smallest
    difference above v. ``ok`` is False where the window cannot decide."""
    xs = pairs.xs
    b, n = xs.shape
    m = pairs.ys.shape[1]
    size = grid.shape[1]
    k_lo = ranks.min(axis=1)
    at = np.clip(np.rint(k_lo * size / (n * m) - 0.5), 0, size - 1).astype(np.int64)
    count, lt = bracketing.count_at(pairs, grid, at, np.arange(b))
    above = count >= k_lo  # v is at or above the group: look below it
    # Below v, x_i's differences descend from j = lt_i; above it they ascend from j = lt_i − 1.
    # Those above are negated, so that for every row the target is the depth-th LARGEST of
    # its window. Laid out B × (WINDOW + 1) × n: the long axis last keeps numpy's inner loops
    # long. Past either end of y the padding gives −∞ (after the sign), never selected.
    width = m + 2 * (WINDOW + 1)
    origin = (np.arange(b) * width + WINDOW + 1)[:, None]
    sign = np.where(above, 1.0, -1.0)[:, None]
    start = np.where(above[:, None], lt, lt - 1) + origin
    offset = np.where(above, 1, -1)[:, None] * np.arange(WINDOW + 1)
    # Signed samples: the subtraction then gives x − y for rows looking below v, y − x above.
    y_signed = (pairs.ypad * sign).ravel()
    x_signed = xs * sign
    index = scratch.get("index", (b, WINDOW, n), np.int64)
    np.add(start[:, None, :], offset[:, :WINDOW, None], out=index)
    window = scratch.get("window", (b, WINDOW, n), np.float64)
    np.take(y_signed, index, out=window, mode="clip")
    np.subtract(x_signed[:, None, :], window, out=window)
    window = window.reshape(b, WINDOW * n)
    window.sort(axis=1)
    beyond = x_signed - y_signed[start + offset[:, WINDOW:]]
    depth = np.where(above[:, None], count[:, None] - ranks + 1, ranks - count[:, None])
    last = window.shape[1]
    picked = np.take_along_axis(window, np.clip(last - depth, 0, last - 1), axis=1)
    # A rank just past C (the group straddles v) is the smallest difference above v.
    past = depth == 0
    if past.any():
        rows = np.flatnonzero(past.any(axis=1))
        first_above = xs[rows] - pairs.ypad.ravel()[lt[rows] - 1 + origin[rows]]
        picked[rows] = np.where(past[rows], first_above.min(axis=1)[:, None], picked[rows])
    ok = (depth.min(axis=1) >= 0) & (depth.max(axis=1) <= last)
    # No x_i's next difference may exceed the deepest rank's value.
    deepest = np.where(past, np.inf, picked).min(axis=1)
    ok &= (beyond <= deepest[:, None]).all(axis=1)
    picked *= np.where(past, 1.0, sign)
    return np.asarray(picked, dtype=np.float64), ok
