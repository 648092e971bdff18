"""Exact merge counts of the pairwise differences x_i − y_j, and the tie statistics.

How many differences lie at or below v — and, for each x_i, from which y_j on — is a merge of
the sorted x − v with the sorted y: O(n + m) instead of forming all n·m differences.

Exactness. Comparisons are made against the exact real differences x_i − y_j: an error-free
transformation (TwoSum) gives the rounding error of x_i − v, and the merge key of x − v is the
smallest double at or above the exact value (:func:`shifted_keys`). Rounding is monotone, so
the k-th smallest exact difference rounds to the k-th smallest rounded difference
fl(x_i − y_j); selections built on these counts return bit for bit what a full sort returns.

Merging with one small sort. Each value becomes an int64 key in the value's order (its IEEE bit
pattern with the negative half flipped), doubled to free the lowest bit for a label: 0 for
x − v, 1 for y, so that at equal values x − v sorts first. Doubling needs |value| < 2, so each
row is first scaled down by a power of two — exact unless a value would turn subnormal; such
rows (a dynamic range beyond about 2^900) are marked and left to the callers' exact fallbacks.
numpy sorts up to 256 keys per row with sorting networks, several times faster per element
than larger sorts — which is why everything here stays within 256 keys per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from judges.arrays import BoolArray, FloatArray, IntArray

__all__ = [
    "Runs",
    "Scratch",
    "SortedPairs",
    "below",
    "pooled_statistics",
    "prepare_pairs",
    "runs",
    "shifted_keys",
]

_SHORT_RUN = 6
"""Longest run of equal values :func:`runs` finds by comparisons before it scans instead."""


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
    """ys between entries of −∞ and +∞ (``pad`` of each), for gathers that may run off y."""

    def take(self, rows: npt.NDArray[np.intp]) -> SortedPairs:
        """The given rows only."""
        return SortedPairs(
            xs=self.xs[rows],
            ys=self.ys[rows],
            xsc=self.xsc[rows],
            ysc=self.ysc[rows],
            exponent=self.exponent[rows],
            scaled=self.scaled[rows],
            ykeys=self.ykeys[rows],
            ypad=self.ypad[rows],
        )


def prepare_pairs(xs: FloatArray, ys: FloatArray, *, pad: int) -> SortedPairs:
    """Scale two sorted B×n and B×m samples for :func:`below` (see the module docstring);
    ``ypad`` gets ``pad`` entries of −∞ before y and of +∞ after it."""
    # +0.0 turns −0.0 into +0.0, whose key must equal 0.0's.
    xs = xs + 0.0
    ys = ys + 0.0
    big = np.maximum(np.maximum(-xs[:, 0], xs[:, -1]), np.maximum(-ys[:, 0], ys[:, -1]))
    # |x|, |y| < 2^top; scaled by 2^−(top + 1) they are below ½, their differences below 1
    # and x − (x_a − y_b) below 2. Only ever scaled down: smaller samples already fit.
    _, top = np.frexp(big)
    exponent = np.maximum(top + 1, 0).astype(np.int64)
    # Every value, and every difference of them, is a multiple of 2^(low − 53), low the frexp
    # exponent of the smallest non-zero magnitude; scaled, that stays a normal number (so the
    # scaling is exact) while low − 53 − exponent ≥ −1022. One check for the whole batch; per
    # row only when it fails.
    scaled = np.ones(xs.shape[0], dtype=bool)
    lowest = _low_exponent(np.concatenate([xs, ys], axis=1))
    if lowest - 53 - exponent.max(initial=0) < -1022:
        low = _low_exponent(np.concatenate([xs, ys], axis=1), axis=1)
        scaled = (exponent == 0) | (low - 53 - exponent >= -1022)
    factor = np.ldexp(1.0, -np.where(scaled, exponent, 0))[:, None]
    xsc = xs * factor
    ysc = ys * factor
    rim = np.full((xs.shape[0], pad), np.inf)
    return SortedPairs(
        xs=xs,
        ys=ys,
        xsc=xsc,
        ysc=ysc,
        exponent=exponent,
        scaled=scaled,
        ykeys=_keys(ysc) + 1,
        ypad=np.concatenate([-rim, ys, rim], axis=1),
    )


def _low_exponent(values: FloatArray, axis: int | None = None) -> IntArray:
    """frexp exponent of the smallest non-zero magnitude (of all, or per row); 2048 if none."""
    magnitude = np.abs(values)
    tiny = np.where(magnitude > 0, magnitude, np.inf).min(axis=axis, initial=np.inf)
    return np.asarray(np.where(np.isinf(tiny), 2048, np.frexp(tiny)[1]), dtype=np.int64)


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


@dataclass(frozen=True, slots=True)
class Runs:
    """Runs of equal values in sorted rows, per row."""

    tie: FloatArray
    """Σ(t³ − t) over the runs of t equal values (the tie correction)."""
    longest: IntArray
    """The longest run."""
    pairs: IntArray
    """Equal pairs (i < j)."""
    marked: IntArray
    """Equal pairs whose later entry is marked (see :func:`runs`)."""


def runs(sorted_rows: FloatArray | IntArray, marks: BoolArray | None = None) -> Runs:
    """Tie statistics of sorted rows from the equal pairs at each distance d: with c_d such
    pairs, Σ(t³ − t) = 6·Σ_d d·c_d (a run of t has t − d pairs at distance d). Rows of short
    runs — the usual — take a few comparisons; long runs switch to one scan."""
    b, n = sorted_rows.shape
    weighted = np.zeros(b, dtype=np.int64)
    pairs = np.zeros(b, dtype=np.int64)
    marked = np.zeros(b, dtype=np.int64)
    longest = np.ones(b, dtype=np.int64)
    for d in range(1, n):
        same = sorted_rows[:, d:] == sorted_rows[:, :-d]
        count = np.count_nonzero(same, axis=1)
        if not count.any():
            break
        if d > _SHORT_RUN:
            return _scanned_runs(sorted_rows, marks)
        pairs += count
        weighted += d * count
        np.copyto(longest, d + 1, where=count > 0)
        if marks is not None:
            marked += np.count_nonzero(same & marks[:, d:], axis=1)
    tie = np.asarray(6.0 * weighted, dtype=np.float64)
    return Runs(tie=tie, longest=longest, pairs=pairs, marked=marked)


def _scanned_runs(sorted_rows: FloatArray | IntArray, marks: BoolArray | None) -> Runs:
    """:func:`runs` by the position of each entry in its run (r), Σ(3r² + 3r) = t³ − t."""
    b, n = sorted_rows.shape
    index = np.arange(n)
    new_run = np.ones((b, n), dtype=bool)
    np.not_equal(sorted_rows[:, 1:], sorted_rows[:, :-1], out=new_run[:, 1:])
    before = index - np.maximum.accumulate(np.where(new_run, index, 0), axis=1)
    marked = np.zeros(b, dtype=np.int64) if marks is None else (before * marks).sum(axis=1)
    return Runs(
        tie=(3 * before * (before + 1)).sum(axis=1).astype(np.float64),
        longest=before.max(axis=1) + 1,
        pairs=before.sum(axis=1),
        marked=marked,
    )


def pooled_statistics(
    pairs: SortedPairs, y_runs: Runs, scratch: Scratch
) -> tuple[FloatArray, FloatArray]:
    """U of the experiment (#{x_i > y_j} + ½·#{x_i = y_j}) and the tie term of the pooled
    sample, per row, from one sort of the pooled merge keys (x labelled 0, y 1, so x sorts
    first among equals); ``y_runs`` are ys' :func:`runs`. Rows that are not scaled compare
    all pairs and sort the pooled values."""
    b, n = pairs.xs.shape
    width = n + pairs.ys.shape[1]
    merged = scratch.get("pooled", (b, width), np.int64)
    np.concatenate([_keys(pairs.xsc), pairs.ykeys], axis=1, out=merged)
    merged.sort(axis=1)
    is_y = scratch.get("label", (b, width), np.int64)
    np.bitwise_and(merged, 1, out=is_y)
    # Σ over x of #{y < x}: the x positions, less the x before each.
    less = width * (width - 1) // 2 - is_y @ np.arange(width) - n * (n - 1) // 2
    np.right_shift(merged, 1, out=merged)
    pooled = runs(merged, is_y.astype(bool))
    # Every x of a value sorts before its equal y: the equal pairs ending on a y, less those
    # among ys alone, are the pairs x_i = y_j.
    equal = pooled.marked - y_runs.pairs
    u = np.asarray(less + 0.5 * equal, dtype=np.float64)
    tie = pooled.tie
    if not pairs.scaled.all():
        rows = np.flatnonzero(~pairs.scaled)
        x, y = pairs.xs[rows, :, None], pairs.ys[rows, None, :]
        u[rows] = (x > y).sum(axis=(1, 2)) + 0.5 * (x == y).sum(axis=(1, 2))
        tie[rows] = runs(np.sort(np.concatenate([pairs.xs[rows], pairs.ys[rows]], axis=1))).tie
    return u, tie
