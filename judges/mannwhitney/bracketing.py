"""Bracketing D₍k₎ among the pairwise differences x_i − y_j by exact counts at grid values.

The grid: differences of evenly spaced order statistics of x and y, at most GRID_LIMIT per
row, sorted (:func:`difference_grid`). A probe at a grid value counts exactly how many
differences lie at or below it (:func:`count_at`, a merge from :mod:`judges.mannwhitney.merges`).
:func:`bracketed` probes until a row's bounds a < D₍k₎ ≤ b hold at most CANDIDATE_LIMIT
differences, then forms and sorts those: it steps by the measured rank error, then bisects the
grid between distinct values, and takes a run of differences equal to the upper bound whole.
It is the patient path — for the rows a single probe in :mod:`judges.mannwhitney.orderstats`
cannot settle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judges.arrays import BoolArray, FloatArray, IntArray
from judges.mannwhitney.merges import SortedPairs, below, shifted_keys

__all__ = ["CANDIDATE_LIMIT", "GRID_LIMIT", "bracketed", "count_at", "difference_grid"]

GRID_LIMIT = 256
"""Largest grid of differences per row (sorts of up to 256 keys are the fast ones)."""
CANDIDATE_LIMIT = 256
"""Most differences a row may hold between its bounds before it takes the full sort."""
_PROBES = 12
"""Exact counts tried per row and group before a row takes the full sort."""


def difference_grid(xsc: FloatArray, ysc: FloatArray) -> FloatArray:
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


def count_at(
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
            lo_at=np.full(b, -1, dtype=np.int64),
            lo_count=np.zeros(b, dtype=np.int64),
            lo_lt=np.full((b, n), m, dtype=np.int64),
            hi_at=np.full(b, size, dtype=np.int64),
            hi_count=np.full(b, n * m, dtype=np.int64),
            hi_lt=np.zeros((b, n), dtype=np.int64),
        )

    def record(
        self,
        todo: IntArray,
        at: tuple[IntArray, IntArray],
        count: IntArray,
        lt: IntArray,
        ranks: tuple[IntArray, IntArray],
    ) -> None:
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


def bracketed(
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
        count, lt = count_at(pairs, grid, probe, todo)
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
            no_hi,
            nxt > at[1],
            np.where(no_lo, nxt < at[0], bounds.hi_at[todo] - bounds.lo_at[todo] > 1),
        )
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
    count, lt = count_at(pairs, grid, bounds.hi_at[rows], rows, strict=True)
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
