"""A side's scrape history and the evaluation of a parsed query over it, on a window's grid.

Pure functions of the scrapes (no I/O): :class:`~analyzer.sources.scrape.ScrapeSource` keeps
one history per (canary, side) and evaluates every metric's queries over it with
:func:`evaluate_query`.

A step is matched to the scrape nearest to it within half a step. A counter's increase for a
step is taken between that scrape and the one nearest to ``range`` earlier, summing the rises
between consecutive scrapes of each series; a fall means the counter restarted, so the rise is
the new value. A failed target makes the steps whose scrapes it missed missing (NaN).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import assert_never

import numpy as np

from analyzer.sources.promql.parse import (
    CounterQuery,
    GaugeQuery,
    HistogramQuery,
    Query,
    Selector,
)
from analyzer.sources.promql.render import duration
from analyzer.sources.window import Grid, Outcome

__all__ = ["Scrape", "SeriesId", "bucket_quantile", "evaluate_query"]

SeriesId = tuple[str, tuple[tuple[str, str], ...]]
"""A scraped series: its target and its sorted labels (the name aside)."""
_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "avg": statistics.fmean,
    "max": max,
    "min": min,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Scrape:
    """One scrape of all of a side's targets."""

    at: float
    samples: dict[str, dict[SeriesId, float]]
    """Metric name → series → value."""
    failures: tuple[str, ...] = ()
    """Why targets could not be scraped, one line each."""


class _Ambiguous(Exception):
    """A bare selector matched several series: the whole query is unusable."""


class _Timeline:
    """A side's scrapes in time order, looked up by the step they fall on."""

    def __init__(self, scrapes: Sequence[Scrape], half_step: float) -> None:
        self.scrapes = scrapes
        self.times = [s.at for s in scrapes]
        self.half_step = half_step

    def nearest(self, t: float) -> int | None:
        """Index of the scrape nearest to ``t`` within half a step, if any."""
        i = bisect.bisect_left(self.times, t)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.times)]
        best = min(candidates, key=lambda j: abs(self.times[j] - t), default=None)
        if best is None or abs(self.times[best] - t) > self.half_step:
            return None
        return best


def evaluate_query(query: Query, scrapes: Sequence[Scrape], grid: Grid) -> Outcome:
    """One parsed query over a side's scrapes, on the grid; why, if no step has a value."""
    timeline = _Timeline(scrapes, grid.step_s / 2)
    values = grid.missing()
    reasons: list[str] = []
    try:
        for k in range(grid.steps):
            result = _at_step(query, timeline, grid.time(k))
            if isinstance(result, str):
                reasons.append(result)
            else:
                values[k] = result
    except _Ambiguous as exc:
        return Outcome(values=grid.missing(), error=str(exc))
    if np.isfinite(values).any():
        return Outcome(values=values)
    return Outcome(values=values, error=_summary(reasons))


def _summary(reasons: list[str]) -> str:
    """The distinct reasons steps are missing, the latest steps' first."""
    distinct = list(dict.fromkeys(reversed(reasons)))
    return "; ".join(distinct[:3]) or "no data"


def _at_step(query: Query, timeline: _Timeline, t: float) -> float | str:
    """The query's value at step time ``t``, or why there is none."""
    match query:
        case GaugeQuery():
            return _gauge(query, timeline, t)
        case CounterQuery():
            return _counter(query, timeline, t)
        case HistogramQuery():
            return _histogram(query, timeline, t)
        case _:
            assert_never(query)


def _gauge(query: GaugeQuery, timeline: _Timeline, t: float) -> float | str:
    i = timeline.nearest(t)
    if i is None:
        return "no scrape near this step"
    scrape = timeline.scrapes[i]
    if scrape.failures:
        return "; ".join(scrape.failures)
    sel = query.selector
    values = [v for sid, v in scrape.samples.get(sel.metric, {}).items() if _matches(sel, sid)]
    if not values:
        return f"empty result: no series of {sel.metric} matched"
    if query.aggregate is not None:
        return _AGGREGATE[query.aggregate](values)
    if len(values) > 1:
        many = f"query returned {len(values)} series with different labels"
        raise _Ambiguous(f"{many}; aggregate it (e.g. sum(...))")
    return values[0]


def _counter(query: CounterQuery, timeline: _Timeline, t: float) -> float | str:
    span = _span(timeline, t, query.range_s)
    if isinstance(span, str):
        return span
    increases = _increases(query.selector, span)
    if not increases:
        return f"empty result: no series of {query.selector.metric} matched in two scrapes"
    total = math.fsum(increases.values())
    return total / query.range_s if query.rate else total


def _histogram(query: HistogramQuery, timeline: _Timeline, t: float) -> float | str:
    span = _span(timeline, t, query.range_s)
    if isinstance(span, str):
        return span
    buckets: dict[float, float] = {}  # sum by (le); rate's division cannot move a quantile
    for (_, labels), increase in _increases(query.selector, span).items():
        bound = _bucket_bound(dict(labels).get("le"))
        if bound is not None:
            buckets[bound] = buckets.get(bound, 0.0) + increase
    if not buckets:
        return f"empty result: no buckets of {query.selector.metric} matched in two scrapes"
    value = bucket_quantile(query.quantile, sorted(buckets.items()))
    return "no observations in this step" if math.isnan(value) else value


def _span(timeline: _Timeline, t: float, range_s: float) -> Sequence[Scrape] | str:
    """The scrapes from ``range_s`` before step time ``t`` to ``t``, or why there are none."""
    end = timeline.nearest(t)
    if end is None:
        return "no scrape near this step"
    begin = timeline.nearest(t - range_s)
    if begin is None or begin >= end:
        return f"no scrape {duration(range_s)} before this step to take the increase from"
    span = timeline.scrapes[begin : end + 1]
    failures = span[0].failures + span[-1].failures
    if failures:
        return "; ".join(dict.fromkeys(failures))
    return span


def _increases(sel: Selector, span: Iterable[Scrape]) -> dict[SeriesId, float]:
    """Each matching series' counter increase over the scrapes; a fall is a restart."""
    last: dict[SeriesId, float] = {}
    totals: dict[SeriesId, float] = {}
    for scrape in span:
        for sid, value in scrape.samples.get(sel.metric, {}).items():
            if not _matches(sel, sid):
                continue
            if sid in last:
                previous = last[sid]
                rise = value - previous if value >= previous else value
                totals[sid] = totals.get(sid, 0.0) + rise
            last[sid] = value
    return totals


def _matches(sel: Selector, sid: SeriesId) -> bool:
    return sel.matches(dict(sid[1]))


def _bucket_bound(le: str | None) -> float | None:
    try:
        bound = float(le) if le is not None else math.nan
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The ``q``-quantile of cumulative ``(upper bound, count)`` buckets sorted by bound.

    Prometheus' ``bucketQuantile`` (promql/quantile.go): counts forced monotonic, linear
    interpolation within the bucket the rank falls in (from 0 for the lowest bucket, unless its
    bound is ≤ 0), and a rank in the +Inf bucket gives the highest finite bound. NaN without a
    +Inf bucket, with fewer than two buckets or with no observations.
    """
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        return math.nan
    bounds = [bound for bound, _ in buckets]
    counts = [count for _, count in buckets]
    for i in range(1, len(counts)):
        counts[i] = max(counts[i], counts[i - 1])
    if counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    b = bisect.bisect_left(counts, rank, 0, len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    lower = bounds[b - 1] if b > 0 else 0.0
    below = counts[b - 1] if b > 0 else 0.0
    width = counts[b] - below
    if width <= 0:
        return math.nan
    return lower + (bounds[b] - lower) * ((rank - below) / width)
