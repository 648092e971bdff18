"""Order statistics of the pairwise differences x_i − y_j without sorting all n·m of them.

The Mann-Whitney interval and estimate are order statistics D₍k₎ of the n·m differences
D = {x_i − y_j}. Sorting them is the obvious way and the slow one (3,600 differences at
n = m = 60). Here, from the two sorted samples of each row:

1. a coarse grid of differences (evenly spaced order statistics of each sample, at most 256,
   one small sort) gives a probe value v near the target rank;
2. the exact count of differences ≤ v and, for each x_i, where its differences cross v, come
   from one merge (:func:`judges.merges.below`);
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

from dataclasses import dataclass

import numpy as np

from judges.arrays import BoolArray, FloatArray, IntArray
from judges.merges import (
    Runs,
    Scratch,
    SortedPairs,
    below,
    pooled_statistics,
    prepare_pairs,
    shifted_keys,
)

__all__ = ["chunk_statistics", "full_order_stats", "settle"]

GRID_LIMIT = 256
"""Largest grid of differences per row (sorts of up to 256 keys are the fast ones)."""
WINDOW = 4
"""Differences per x_i examined next to a single probe (n·WINDOW ≤ 256 keeps the sort fast)."""
_PROBES = 12
"""Exact counts tried per row and group before a row takes the full sort."""
CANDIDATE_LIMIT = 256
"""Most differences a row may hold between its bounds before it takes the full sort."""
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
    grid = _grid(part.xsc, part.ysc)
    for g, (ranks, out) in enumerate(zip(groups, results, strict=True)):
        found, ok = _windowed(part, grid, ranks[fast], scratch)
        out[fast[ok]] = found[ok]
        unsettled[g, fast[~ok]] = True
    return u, tie, results, unsettled


def settle(
    xs: FloatArray, ys: FloatArray, groups: list[IntArray], results: list[FloatArray],
    unsettled: BoolArray,
) -> None:  # fmt: skip
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
        grid = _grid(part.xsc, part.ysc)
        for g, (ranks, out) in enumerate(zip(groups, results, strict=True)):
            need = np.flatnonzero(unsettled[g, rows[fast]])
            if not need.size:
                continue
            found, ok = _bracketed(part.take(need), grid[need], ranks[rows[fast[need]]])
            out[rows[fast[need[ok]]]] = found[ok]
            full[fast[need[~ok]]] = True
    if full.any():
        at = rows[full]
        merged = full_order_stats(xs[at], ys[at], np.concatenate([r[at] for r in groups], axis=1))
        first = 0
        for ranks, out in zip(groups, results, strict=True):
            out[at] = merged[:, first : first + ranks.shape[1]]
            first += ranks.shape[1]


def _grid(xsc: FloatArray, ysc: FloatArray) -> FloatArray:
    """Sorted differences of evenly spaced order statistics of x and y, ≤ GRID_LIMIT per row."""
    n, m = xsc.shape[1], ysc.shape[1]
    gx = max(1, min(n, round((GRID_LIMIT * n / m) ** 0.5)))
    gy = max(1, min(m, GRID_LIMIT // gx))
    ix = ((np.arange(gx) + 0.5) * n / gx).astype(np.intp)
    iy = ((np.arange(gy) + 0.5) * m / gy).astype(np.intp)
    # Into a C-ordered buffer: sorting rows of a strided view is several times slower.
    grid = np.empty((xsc.shape[0], gx * gy))
    np.subtract(xsc[:, ix, None], ysc[:, None, iy], out=grid.reshape(-1, gx, gy))
    grid.sort(axis=1)
    return grid


def _probe(
    pairs: SortedPairs, grid: FloatArray, at: IntArray, rows: IntArray, *, strict: bool = False
) -> tuple[IntArray, IntArray]:
    """Exact count of the differences ≤ grid[row, at] (``strict``: <) for each of ``rows``,
    and for each x_i the first j counted (differences ≤ v are x_i − y_j for j ≥ lt_i)."""
    every = rows.size == grid.shape[0]
    xsc = pairs.xsc if every else pairs.xsc[rows]
    ykeys = pairs.ykeys if every else pairs.ykeys[rows]
    g = grid if every else grid[rows]
    value = np.take_along_axis(g, at[:, None], axis=1)[:, 0]
    lt = below(ykeys, shifted_keys(xsc, value, strict=strict))
    return xsc.shape[1] * ykeys.shape[1] - lt.sum(axis=1), lt


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
    count, lt = _probe(pairs, grid, at, np.arange(b))
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


@dataclass(slots=True)
class _Bounds:
    """Per row, the best bounds found so far: a (count < the group's lowest rank) and b
    (count ≥ its highest), as grid index (−1 and the grid size stand for −∞ and +∞), exact
    count, and for each x_i the first j counted (differences ≤ v are x_i − y_j, j ≥ lt_i)."""

    lo_at: IntArray
    lo_count: IntArray
    lo_lt: IntArray
    hi_at: IntArray
    hi_count: IntArray
    hi_lt: IntArray

    @classmethod
    def unbounded(cls, b: int, n: int, m: int, size: int) -> _Bounds:
        """−∞ and +∞ for every row."""
        return cls(
            lo_at=np.full(b, -1, dtype=np.int64), lo_count=np.zeros(b, dtype=np.int64),
            lo_lt=np.full((b, n), m, dtype=np.int64), hi_at=np.full(b, size, dtype=np.int64),
            hi_count=np.full(b, n * m, dtype=np.int64), hi_lt=np.zeros((b, n), dtype=np.int64),
        )  # fmt: skip

    def record(
        self, todo: IntArray, at: tuple[IntArray, IntArray], count: IntArray, lt: IntArray,
        ranks: tuple[IntArray, IntArray],
    ) -> None:  # fmt: skip
        """Take a probe (grid run ``at`` = (first, last) index, its count and split) as the
        lower bound where it falls short of the group and as the upper where it reaches it."""
        low = count < ranks[0][todo]
        rows = todo[low]
        self.lo_at[rows], self.lo_count[rows], self.lo_lt[rows] = at[1][low], count[low], lt[low]
        high = count >= ranks[1][todo]
        rows = todo[high]
        self.hi_at[rows], self.hi_count[rows] = at[0][high], count[high]
        self.hi_lt[rows] = lt[high]

    def wide(self, todo: IntArray) -> BoolArray:
        """Rows holding more differences between their bounds than a row may sort."""
        return np.asarray(self.hi_count[todo] - self.lo_count[todo] > CANDIDATE_LIMIT)


def _bracketed(
    pairs: SortedPairs, grid: FloatArray, ranks: IntArray
) -> tuple[FloatArray, BoolArray]:
    """One group of ranks: bounds a < D₍k₎ ≤ b found by probing grid values with exact
    counts, then the few differences between them; ``ok`` False where the full sort decides.

    The first probe is the grid value at the target's share of the grid. Its exact count says
    on which side of the target it lies and by how many ranks; the next probe steps that many
    grid cells (each holds about nm/grid differences), plus a quarter and one, so most rows are
    bracketed after two probes with a few dozen differences between the bounds. Rows with
    more keep probing (then bisecting the grid between their bounds); when a run of equal
    differences at the upper bound is what holds too many, the ranks inside it take its value.
    """
    b, n = pairs.xsc.shape
    m = pairs.ysc.shape[1]
    size = grid.shape[1]
    per_cell = n * m / size
    k_lo, k_hi = ranks.min(axis=1), ranks.max(axis=1)
    bounds = _Bounds.unbounded(b, n, m, size)
    todo = np.arange(b)
    probe = np.clip(np.rint(k_lo / per_cell - 0.5), 0, size - 1).astype(np.int64)
    runs_of: tuple[IntArray, IntArray] | None = None
    for attempt in range(_PROBES):
        if attempt == 2:
            # Rows this far in meet runs of equal grid values (ties): from now on a probe
            # stands for its whole run, and steps and bisection move between distinct values.
            runs_of = _grid_runs(grid, todo)
            real = todo[bounds.lo_at[todo] >= 0]
            bounds.lo_at[real] = runs_of[1][real, bounds.lo_at[real]]
            real = todo[bounds.hi_at[todo] < size]
            bounds.hi_at[real] = runs_of[0][real, bounds.hi_at[real]]
        count, lt = _probe(pairs, grid, probe, todo)
        at = (
            (probe, probe)
            if runs_of is None
            else (runs_of[0][todo, probe], runs_of[1][todo, probe])
        )
        bounds.record(todo, at, count, lt, (k_lo, k_hi))
        # Next: step towards a missing bound from this probe, else bisect between the bounds.
        no_hi = bounds.hi_at[todo] == size
        no_lo = bounds.lo_at[todo] == -1
        up = at[1] + np.ceil((k_hi[todo] - count) * 1.25 / per_cell).astype(np.int64) + 1
        down = at[0] - np.ceil((count - k_lo[todo] + 1) * 1.25 / per_cell).astype(np.int64) - 1
        middle = (bounds.lo_at[todo] + bounds.hi_at[todo]) // 2
        nxt = np.clip(np.where(no_hi, up, np.where(no_lo, down, middle)), 0, size - 1)
        # Past an end of the grid the end itself is probed, once.
        movable = np.where(
            no_hi, nxt > at[1],
            np.where(no_lo, nxt < at[0], bounds.hi_at[todo] - bounds.lo_at[todo] > 1),
        )  # fmt: skip
        keep = bounds.wide(todo) & movable
        todo, probe = todo[keep], nxt[keep]
        if not todo.size:
            break
    found = _ties_at_upper(pairs, grid, bounds)
    width = bounds.lo_lt - bounds.hi_lt
    ok = width.sum(axis=1) <= CANDIDATE_LIMIT
    width[~ok] = 0
    picked = _pick(pairs, bounds.hi_lt, width, ranks - bounds.lo_count[:, None])
    if found is not None:
        rows, tie_count, value = found
        ok[rows] = True
        inside = ranks[rows] > tie_count[:, None]
        picked[rows] = np.where(inside, value[:, None], picked[rows])
    return picked, ok


def _grid_runs(grid: FloatArray, rows: IntArray) -> tuple[IntArray, IntArray]:
    """For the given rows of the sorted grid, the first and last index of each entry's run of
    equal values (B×size arrays, filled on those rows only)."""
    b, size = grid.shape
    first = np.empty((b, size), dtype=np.int64)
    last = np.empty((b, size), dtype=np.int64)
    g = grid[rows]
    same = g[:, 1:] == g[:, :-1]
    index = np.arange(size)
    starts = np.where(np.concatenate([np.zeros((rows.size, 1), bool), same], axis=1), 0, index)
    first[rows] = np.maximum.accumulate(starts, axis=1)
    ends = np.where(np.concatenate([same, np.zeros((rows.size, 1), bool)], axis=1), size, index)
    last[rows] = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
    return first, last


def _ties_at_upper(
    pairs: SortedPairs, grid: FloatArray, bounds: _Bounds
) -> tuple[IntArray, IntArray, FloatArray] | None:
    """Rows whose bounds hold too many differences because many equal the upper bound v:
    count those < v; ranks above that count are v itself, and the rest lie strictly between
    the bounds. Moves those rows' upper bound to the strict split and returns (rows,
    count < v, v unscaled), or None when no row needs it."""
    size = grid.shape[1]
    rows = np.flatnonzero(bounds.wide(np.arange(grid.shape[0])) & (bounds.hi_at < size))
    if not rows.size:
        return None
    count, lt = _probe(pairs, grid, bounds.hi_at[rows], rows, strict=True)
    shrinks = count - bounds.lo_count[rows] <= CANDIDATE_LIMIT
    rows, count, lt = rows[shrinks], count[shrinks], lt[shrinks]
    bounds.hi_count[rows], bounds.hi_lt[rows] = count, lt
    value = np.ldexp(grid[rows, bounds.hi_at[rows]], pairs.exponent[rows])
    return rows, count, value


def _pick(pairs: SortedPairs, start: IntArray, width: IntArray, local: IntArray) -> FloatArray:
    """Form the differences x_i − y_j for j in [start_i, start_i + width_i) of each row, sort
    each row's few and return the ``local``-th (1-based) of each row (unscaled)."""
    xs, ys = pairs.xs, pairs.ys
    b, n = xs.shape
    m = ys.shape[1]
    total = width.sum(axis=1)
    lanes = width.ravel()
    busy = np.flatnonzero(lanes)
    lane_width = lanes[busy]
    count = int(lane_width.sum())
    # Candidate c of a lane: y index = the lane's first j + (c − the lane's first candidate).
    lane = np.repeat(busy, lane_width)
    y_from = (busy // n) * m + start.ravel()[busy] - (np.cumsum(lane_width) - lane_width)
    serial = np.arange(count)
    values = xs.ravel()[lane] - ys.ravel()[serial + np.repeat(y_from, lane_width)]
    size = max(1, int(total.max(initial=0)))
    padded = np.full((b, size), np.inf)
    row_shift = np.arange(b) * size - (np.cumsum(total) - total)
    padded.ravel()[serial + np.repeat(row_shift, total)] = values
    padded.sort(axis=1)
    index = np.clip(local - 1, 0, size - 1)
    return np.asarray(np.take_along_axis(padded, index, axis=1), dtype=np.float64)
