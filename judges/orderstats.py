"""Order statistics of the pairwise differences x_i − y_j without sorting all n·m of them.

The Mann-Whitney interval and estimate are order statistics D₍k₎ of the n·m differences
D = {x_i − y_j}. Sorting them is the obvious way and the slow one (3,600 differences at
n = m = 60). Here, from the two sorted samples of each row:

1. a coarse grid of differences (every s-th order statistic of each sample, at most 256 of them,
   one small sort) gives two bounds a < D₍k₎ ≤ b that are a few grid steps apart;
2. how many differences lie at or below a and b, and for each x_i which y_j fall between, comes
   from merging the sorted x − a with the sorted y (:func:`below`) — O(n + m), not O(nm);
3. the few differences in (a, b] are formed and sorted, and D₍k₎ is read off.

A row whose bounds miss (the grid misjudged the rank) or hold too many differences is finished
by sorting all of its differences, so the answer never depends on the grid — only the time does.

Exactness. Comparisons are made against the exact real differences x_i − y_j (an error-free
transformation, TwoSum, gives the rounding error of x_i − a), and rounding is monotone, so the
k-th smallest exact difference rounds to the k-th smallest rounded difference fl(x_i − y_j): the
result is bit for bit what a full sort of the rounded differences returns.

Merging with one small sort. Each value becomes an int64 key in the value's order (its IEEE bit
pattern with the negative half flipped), doubled to free the lowest bit for a label: 0 for
x − a, 1 for y, so that at equal values x − a sorts first. Doubling needs |value| < 2, so each row
is first scaled by a power of two — exact unless a value would turn subnormal; such rows (a
dynamic range beyond 2^900) take the full sort too. Sorting ≤ 256 keys per row is several times
cheaper than sorting the n·m differences, which is where the time went.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

__all__ = [
    "Scratch",
    "SortedPairs",
    "below",
    "full_order_stats",
    "chunk_statistics",
    "prepare_pairs",
    "shifted_keys",
    "pooled_statistics",
    "runs",
    "settle",
]

GRID_LIMIT = 256
"""Largest grid of differences per row (sorts of up to 256 keys are the fast ones)."""
WINDOW = 4
"""Differences per x_i examined next to a single probe (n·WINDOW ≤ 256 keeps the sort fast)."""
_SHORT_RUN = 6
"""Longest run of equal values :func:`runs` finds by comparisons before it scans instead."""
_PROBES = 12
"""Exact counts tried per row and group before a row takes the full sort."""
CANDIDATE_LIMIT = 256
"""Most differences a row may hold between its bounds before it takes the full sort."""
_MIN_PAIRS = 400
"""Below this many differences per row a full sort is as cheap as the grid."""

_FLIP = np.int64(0x7FFF_FFFF_FFFF_FFFF)


@dataclass(frozen=True, slots=True)
class SortedPairs:
    """Two sorted samples per row, scaled for the merges.

    ``xs``/``ys`` are the sorted samples as given; ``xsc``/``ysc`` the same times 2^−``exponent``
    (per row) so that every value and every difference of differences is below 2 in magnitude;
    ``scaled`` is False for rows where that scaling is not exact (they take the full sort).
    """

    xs: FloatArray
    ys: FloatArray
    xsc: FloatArray
    ysc: FloatArray
    exponent: IntArray
    scaled: BoolArray
    ykeys: IntArray
    """Merge keys of the scaled y (label bit 1)."""
    ypad: FloatArray
    """ys with WINDOW + 1 entries of −∞ before and +∞ after, for the window gathers."""

    def take(self, rows: npt.NDArray[np.intp]) -> SortedPairs:
        """The given rows only."""
        return SortedPairs(
            xs=self.xs[rows], ys=self.ys[rows], xsc=self.xsc[rows], ysc=self.ysc[rows],
            exponent=self.exponent[rows], scaled=self.scaled[rows], ykeys=self.ykeys[rows],
            ypad=self.ypad[rows],
        )  # fmt: skip


def prepare_pairs(xs: FloatArray, ys: FloatArray) -> SortedPairs:
    """Scale two sorted B×n and B×m samples for :func:`below` (see the module docstring)."""
    # +0.0 turns −0.0 into +0.0, whose key must equal 0.0's.
    xs = xs + 0.0
    ys = ys + 0.0
    big = np.maximum(np.maximum(-xs[:, 0], xs[:, -1]), np.maximum(-ys[:, 0], ys[:, -1]))
    # |x|, |y| < 2^e / 2 keeps x − (x' − y') below 2 after scaling by 2^−(e + 1).
    _, top = np.frexp(big)
    # Only ever scaled down: smaller samples already fit, and unscaled values are exact.
    exponent = np.maximum(top + 1, 0).astype(np.int64)
    # Every difference of these values is a multiple of 2^(E − 52), E the exponent of the
    # smallest non-zero magnitude; it stays a normal number after scaling while E − 52 − e is
    # at least −1022. One check for the whole batch; per row only when it fails.
    scaled = np.ones(xs.shape[0], dtype=bool)
    if _low_exponent(np.concatenate([xs, ys], axis=1)).min() - 53 - exponent.max() < -1022:
        low = _low_exponent(np.concatenate([xs, ys], axis=1), axis=1)
        scaled = (exponent == 0) | (low - 53 - exponent >= -1022)
    factor = np.ldexp(1.0, -np.where(scaled, exponent, 0))[:, None]
    xsc = xs * factor
    ysc = ys * factor
    rim = np.full((xs.shape[0], WINDOW + 1), np.inf)
    return SortedPairs(
        xs=xs, ys=ys, xsc=xsc, ysc=ysc, exponent=exponent, scaled=scaled,
        ykeys=_keys(ysc) + 1, ypad=np.concatenate([-rim, ys, rim], axis=1),
    )  # fmt: skip


def _low_exponent(values: FloatArray, axis: int | None = None) -> IntArray:
    """frexp exponent of the smallest non-zero magnitude (of all, or per row); large if none."""
    magnitude = np.abs(values)
    tiny = np.where(magnitude > 0, magnitude, 1.0).min(axis=axis)
    return np.asarray(np.frexp(tiny)[1], dtype=np.int64)


def _ordinal(values: FloatArray) -> IntArray:
    """Order-preserving int64 of each double (no −0.0): the IEEE bits, the negative half
    flipped, so that neighbouring doubles get neighbouring integers."""
    bits = values.view(np.int64)
    flip = ((bits >> 63).view(np.uint64) >> np.uint64(1)).view(np.int64)
    return np.asarray(bits ^ flip, dtype=np.int64)


def _keys(values: FloatArray) -> IntArray:
    """Merge keys (doubled ordinals, bit 0 free for the label) of values with |v| < 2."""
    return np.asarray(_ordinal(values) * 2, dtype=np.int64)


def shifted_keys(xsc: FloatArray, v: FloatArray, *, strict: bool = False) -> IntArray:
    """Merge keys of q = the smallest double ≥ x − v (``strict``: > x − v), x − v exact, so
    that y ≥ q ⟺ x − y ≤ v (``strict``: < v) for every double y; one v per row.

    fl(x − v) plus its exact rounding error e (TwoSum): the true x − v lies above fl(x − v)
    when e > 0, and then the double after fl(x − v) is the first at or above it."""
    minus = -v[:, None]
    s = xsc + minus
    back = s - xsc
    err = (xsc - (s - back)) + (minus - back)
    up = err >= 0 if strict else err > 0
    return np.asarray((_ordinal(s + 0.0) + up) * 2, dtype=np.int64)


def below(ykeys: IntArray, qkeys: IntArray) -> IntArray:
    """lt[r, i] = #{j : y[r, j] < q[r, i]} for ascending rows q (B×n), given both as merge
    keys (``SortedPairs.ykeys``, :func:`shifted_keys`): a merge by one small sort."""
    b, n = qkeys.shape
    merged = np.concatenate([qkeys, ykeys], axis=1)
    merged.sort(axis=1)
    first = np.flatnonzero((merged & 1) == 0).reshape(b, n)
    return np.asarray(
        first - (np.arange(b, dtype=np.int64) * merged.shape[1])[:, None] - np.arange(n),
        dtype=np.int64,
    )


def runs(sorted_rows: FloatArray | IntArray) -> tuple[FloatArray, IntArray, IntArray]:
    """Per sorted row: Σ(t³ − t) over its runs of t equal values (the tie correction), the
    longest run, and for each entry how many equal ones precede it (r), using
    Σ_{r<t} (3r² + 3r) = t³ − t. r grows by one for each distance d at which an entry equals
    the one d places back; short runs (the usual) take a few comparisons, long ones a scan."""
    b, n = sorted_rows.shape
    before = np.zeros((b, n), dtype=np.int64)
    for d in range(1, n):
        same = sorted_rows[:, d:] == sorted_rows[:, :-d]
        if not same.any():
            break
        if d > _SHORT_RUN:
            index = np.arange(n)
            new_run = np.ones((b, n), dtype=bool)
            np.not_equal(sorted_rows[:, 1:], sorted_rows[:, :-1], out=new_run[:, 1:])
            before = index - np.maximum.accumulate(np.where(new_run, index, 0), axis=1)
            break
        before[:, d:] += same
    tie = (3 * before * (before + 1)).sum(axis=1)
    return tie.astype(np.float64), before.max(axis=1) + 1, before


def pooled_statistics(
    pairs: SortedPairs, y_before: IntArray
) -> tuple[FloatArray, FloatArray]:
    """U of the experiment (#{x_i > y_j} + ½·#{x_i = y_j}) and the tie term of the pooled
    sample, per row, from one sort of the pooled merge keys (x labelled 0, y 1, so x sorts
    first among equals); ``y_before`` is :func:`runs`' r of ys. Rows that are not scaled
    compare all pairs and sort the pooled values."""
    b, n = pairs.xs.shape
    merged = np.concatenate([_keys(pairs.xsc), pairs.ykeys], axis=1)
    merged.sort(axis=1)
    label = merged & 1
    index = np.arange(merged.shape[1])
    # Σ over x of #{y < x} is Σ of the x positions minus the x before each.
    less = ((1 - label) * index).sum(axis=1) - n * (n - 1) // 2
    tie, _, before = runs(merged >> 1)
    # An equal y follows every x of its value: Σ_y (equals before it) − Σ_y (equal y before
    # it) = #{x_i = y_j}.
    equal = (label * before).sum(axis=1) - y_before.sum(axis=1)
    u = np.asarray(less + 0.5 * equal, dtype=np.float64)
    if not pairs.scaled.all():
        rows = np.flatnonzero(~pairs.scaled)
        x, y = pairs.xs[rows, :, None], pairs.ys[rows, None, :]
        u[rows] = (x > y).sum(axis=(1, 2)) + 0.5 * (x == y).sum(axis=(1, 2))
        tie[rows] = runs(np.sort(np.concatenate([pairs.xs[rows], pairs.ys[rows]], axis=1)))[0]
    return u, tie


def full_order_stats(xs: FloatArray, ys: FloatArray, ranks: IntArray) -> FloatArray:
    """D₍k₎ for 1-based ranks (B×R) by sorting every difference: the reference the fast path
    must equal, and its fallback."""
    b, n = xs.shape
    diffs = np.empty((b, n * ys.shape[1]))
    np.subtract(xs[:, :, None], ys[:, None, :], out=diffs.reshape(b, n, -1))
    diffs.sort(axis=1)
    return np.asarray(np.take_along_axis(diffs, ranks - 1, axis=1), dtype=np.float64)


class Scratch:
    """Buffers reused by the chunks of one call. numpy takes each large temporary fresh from
    the operating system, and the page faults of touching it cost more than the arithmetic
    done in it (measured: about a fifth of the judging time at n = m = 60)."""

    def __init__(self) -> None:
        self._buffers: dict[str, npt.NDArray[Any]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type[np.generic]) -> npt.NDArray[Any]:
        """A C-ordered array of ``shape`` (contents undefined), reusing ``name``'s memory."""
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = np.empty(size, dtype=dtype)
            self._buffers[name] = buffer
        return buffer[:size].reshape(shape)


def chunk_statistics(
    xs: FloatArray, ys: FloatArray, y_before: IntArray, groups: list[IntArray], scratch: Scratch
) -> tuple[FloatArray, FloatArray, list[FloatArray], BoolArray]:
    """For sorted B×n and B×m samples (a chunk of a few hundred rows): U of the experiment,
    the pooled tie term, D₍k₎ for each group of 1-based ranks (each B×R, a group's ranks
    adjacent) and, per group and row, whether it is still unsettled — to be finished by
    :func:`settle` (values there are undefined). Settled values equal
    :func:`full_order_stats`."""
    b, n = xs.shape
    m = ys.shape[1]
    pairs = prepare_pairs(xs, ys)
    u, tie = pooled_statistics(pairs, y_before)
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
    pairs = prepare_pairs(xs[rows], ys[rows])
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
    sign = np.where(above, 1.0, -1.0)
    start = np.where(above[:, None], lt, lt - 1) + origin
    offset = sign.astype(np.int64)[:, None] * np.arange(WINDOW + 1)
    index = scratch.get("index", (b, WINDOW + 1, n), np.int64)
    np.add(start[:, None, :], offset[:, :, None], out=index)
    values = scratch.get("values", (b, WINDOW + 1, n), np.float64)
    np.take(pairs.ypad.ravel(), index, out=values, mode="clip")
    np.subtract(xs[:, None, :], values, out=values)
    values *= sign[:, None, None]
    window = scratch.get("window", (b, WINDOW * n), np.float64)
    np.copyto(window.reshape(b, WINDOW, n), values[:, :WINDOW, :])
    window.sort(axis=1)
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
    ok &= (values[:, WINDOW, :] <= deepest[:, None]).all(axis=1)
    picked *= np.where(past, 1.0, sign[:, None])
    return np.asarray(picked, dtype=np.float64), ok


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
    total_pairs = n * m
    size = grid.shape[1]
    per_cell = total_pairs / size
    k_lo = ranks.min(axis=1)
    k_hi = ranks.max(axis=1)
    # Bounds: grid index (−1 and size stand for −∞ and +∞), count ≤ it, split per x_i.
    lo_at = np.full(b, -1, dtype=np.int64)
    lo_count = np.zeros(b, dtype=np.int64)
    lo_lt = np.full((b, n), m, dtype=np.int64)
    hi_at = np.full(b, size, dtype=np.int64)
    hi_count = np.full(b, total_pairs, dtype=np.int64)
    hi_lt = np.zeros((b, n), dtype=np.int64)
    todo = np.arange(b)
    probe = np.clip(np.rint(k_lo / per_cell - 0.5), 0, size - 1).astype(np.int64)
    run_first = run_last = None
    for attempt in range(_PROBES):
        if attempt == 2:
            # Rows this far in meet runs of equal grid values (ties): from now on a probe
            # stands for its whole run, and steps and bisection move between distinct values.
            run_first, run_last = _grid_runs(grid, todo)
            real = lo_at[todo] >= 0
            lo_at[todo[real]] = run_last[todo[real], lo_at[todo[real]]]
            real = hi_at[todo] < size
            hi_at[todo[real]] = run_first[todo[real], hi_at[todo[real]]]
        count, lt = _probe(pairs, grid, probe, todo)
        if run_first is None or run_last is None:
            top, bottom = probe, probe
        else:
            top, bottom = run_last[todo, probe], run_first[todo, probe]
        low = count < k_lo[todo]
        high = count >= k_hi[todo]
        at = todo[low]
        lo_at[at], lo_count[at], lo_lt[at] = top[low], count[low], lt[low]
        at = todo[high]
        hi_at[at], hi_count[at], hi_lt[at] = bottom[high], count[high], lt[high]
        # Next: step towards a missing bound from this probe, else bisect between the bounds.
        no_hi = hi_at[todo] == size
        no_lo = lo_at[todo] == -1
        up = top + np.ceil((k_hi[todo] - count) * 1.25 / per_cell).astype(np.int64) + 1
        down = bottom - np.ceil((count - k_lo[todo] + 1) * 1.25 / per_cell).astype(np.int64) - 1
        middle = (lo_at[todo] + hi_at[todo]) // 2
        nxt = np.clip(np.where(no_hi, up, np.where(no_lo, down, middle)), 0, size - 1)
        wide = hi_count[todo] - lo_count[todo] > CANDIDATE_LIMIT
        # Past an end of the grid the end itself is probed, once.
        movable = np.where(
            no_hi, nxt > top, np.where(no_lo, nxt < bottom, hi_at[todo] - lo_at[todo] > 1)
        )
        keep = wide & movable
        todo = todo[keep]
        probe = nxt[keep]
        if not todo.size:
            break
    found = _ties_at_upper(pairs, grid, ranks, hi_at, lo_count, hi_count, hi_lt)
    width = lo_lt - hi_lt
    total = width.sum(axis=1)
    ok = total <= CANDIDATE_LIMIT
    width[~ok] = 0
    picked = _pick(pairs, hi_lt, width, ranks - lo_count[:, None])
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
    pairs: SortedPairs, grid: FloatArray, ranks: IntArray, hi_at: IntArray,
    lo_count: IntArray, hi_count: IntArray, hi_lt: IntArray,
) -> tuple[IntArray, IntArray, FloatArray] | None:  # fmt: skip
    """Rows whose bounds hold too many differences because many equal the upper bound v:
    count those < v; ranks above that count are v itself, and the rest lie strictly between
    the bounds. Updates ``hi_count``/``hi_lt`` to the strict split for those rows and returns
    (rows, count < v, v unscaled), or None when no row needs it."""
    size = grid.shape[1]
    rows = np.flatnonzero((hi_count - lo_count > CANDIDATE_LIMIT) & (hi_at < size))
    if not rows.size:
        return None
    count, lt = _probe(pairs, grid, hi_at[rows], rows, strict=True)
    shrinks = count - lo_count[rows] <= CANDIDATE_LIMIT
    rows, count, lt = rows[shrinks], count[shrinks], lt[shrinks]
    hi_count[rows], hi_lt[rows] = count, lt
    value = np.ldexp(grid[rows, hi_at[rows]], pairs.exponent[rows])
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
