"""The embedded default source: scrape each side's ``/metrics`` directly, no Prometheus needed.

Every :meth:`ScrapeSource.fetch` scrapes all targets of both sides *now* (the injected clock's
time), attaches the side's labels to every sample as Prometheus attaches target labels (so the
``${selector}`` matchers select them; a clashing scraped label becomes ``exported_<name>``),
and appends the scrape to a per-(canary, side) history that reaches back one query range and
one step before the window. Each metric's rendered queries are then evaluated over that history
on the window's step grid. Only the query shapes in
:data:`~analyzer.sources.promql.parse.SUPPORTED_SHAPES` can be evaluated; :func:`check_supported`
tells a config author up front.

A step is matched to the scrape nearest to it within half a step. A counter's increase for a
step is taken between that scrape and the one nearest to ``range`` earlier, summing the rises
between consecutive scrapes of each series; a fall means the counter restarted, so the rise is
the new value. A failed target makes the steps whose scrapes it missed missing (NaN).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import assert_never

import aiohttp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from analyzer.clock import Clock
from analyzer.errors import InvalidInput, SourceError, SourcePayloadError, SourceUnavailable
from analyzer.model import Side, Window
from analyzer.sources.http import map_client_errors
from analyzer.sources.promql.parse import (
    CounterQuery,
    GaugeQuery,
    HistogramQuery,
    Query,
    Selector,
    parse,
)
from analyzer.sources.promql.render import duration
from analyzer.sources.protocol import FetchRequest
from analyzer.sources.window import SIDES, Grid, Outcome, assemble_window, render_request, sides

__all__ = ["ScrapeSource", "bucket_quantile", "check_supported"]

SeriesId = tuple[str, tuple[tuple[str, str], ...]]
"""A scraped series: its target and its sorted labels (the name aside)."""
_ACCEPT = {"Accept": "text/plain;version=0.0.4;q=1.0, */*;q=0.1"}
_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "avg": statistics.fmean,
    "max": max,
    "min": min,
}


def check_supported(rendered_query: str, *, where: str = "query") -> None:
    """Raise :class:`InvalidInput` on ``where``, listing the supported shapes, if the scrape
    source cannot evaluate ``rendered_query``."""
    parse(rendered_query, where=where)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scrape:
    """One scrape of all of a side's targets."""

    at: float
    samples: dict[str, dict[SeriesId, float]]
    """Metric name → series → value."""
    failures: tuple[str, ...] = ()
    """Why targets could not be scraped, one line each."""


class ScrapeSource:
    """A :class:`~analyzer.sources.MetricSource` that scrapes the sides' targets itself.

    ``session`` is the process's shared session; the caller owns and closes it.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 5.0,
        max_concurrency: int = 64,
        clock: Clock,
    ) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise InvalidInput("timeout_s", f"must be finite and > 0, got {timeout_s!r}")
        if max_concurrency < 1:
            raise InvalidInput("max_concurrency", f"must be ≥ 1, got {max_concurrency!r}")
        self._session = session
        self._timeout_s = timeout_s
        self._limit = asyncio.Semaphore(max_concurrency)
        self._clock = clock
        self._history: dict[tuple[str, str], list[_Scrape]] = {}

    async def fetch(self, request: FetchRequest) -> Window:
        """Scrape both sides now, then evaluate every metric over the history on the grid."""
        grid = Grid.of(request)
        queries = render_request(request)
        parsed = [parse(q.text, where=q.where) for q in queries]
        names = frozenset(p.selector.metric for p in parsed)
        at = self._clock.now()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._scrape(s, names, at)) for s in sides(request).values()]
        reach = max((p.range_s for p in parsed if not isinstance(p, GaugeQuery)), default=0.0)
        keep_from = grid.start - max(reach, grid.step_s) - grid.step_s
        for side, task in zip(SIDES, tasks, strict=True):
            self._remember((request.canary_id, side), task.result(), keep_from)
        outcomes = [
            (q, _evaluate(p, self._history[(request.canary_id, q.side)], grid))
            for q, p in zip(queries, parsed, strict=True)
        ]
        return assemble_window(request, grid, outcomes)

    def forget(self, canary_id: str) -> None:
        """Drop a canary's scrape history (when it ends)."""
        for side in SIDES:
            self._history.pop((canary_id, side), None)

    async def close(self) -> None:
        """Drop every history; the session belongs to the caller."""
        self._history.clear()

    def _remember(self, key: tuple[str, str], scrape: _Scrape, keep_from: float) -> None:
        kept = [s for s in self._history.get(key, ()) if s.at >= keep_from and s.at != scrape.at]
        bisect.insort(kept, scrape, key=lambda s: s.at)
        self._history[key] = kept

    async def _scrape(self, side: Side, names: frozenset[str], at: float) -> _Scrape:
        if not side.targets:
            return _Scrape(at=at, samples={}, failures=("the side has no scrape targets",))
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._target(t, side.labels, names)) for t in side.targets]
        samples: dict[str, dict[SeriesId, float]] = {}
        failures = []
        for task in tasks:
            scraped, failure = task.result()
            for name, series in scraped.items():
                samples.setdefault(name, {}).update(series)
            if failure:
                failures.append(failure)
        return _Scrape(at=at, samples=samples, failures=tuple(failures))

    async def _target(
        self, target: str, labels: Mapping[str, str], names: frozenset[str]
    ) -> tuple[dict[str, dict[SeriesId, float]], str]:
        try:
            async with self._limit:
                text = await self._get(target)
            # Parsing a large exposition takes milliseconds of CPU: keep it off the loop.
            return await asyncio.to_thread(_samples, text, target, labels, names), ""
        except SourceError as exc:
            return {}, f"scrape of {target} failed: {exc}"

    async def _get(self, target: str) -> str:
        client_timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        with map_client_errors(self._timeout_s):
            async with (
                asyncio.timeout(self._timeout_s),
                self._session.get(target, headers=_ACCEPT, timeout=client_timeout) as response,
            ):
                status, body = response.status, await response.read()
        if status != 200:
            raise SourceUnavailable(f"HTTP {status}")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise SourcePayloadError("the body is not UTF-8 text") from None


def _samples(
    text: str, target: str, side_labels: Mapping[str, str], names: frozenset[str]
) -> dict[str, dict[SeriesId, float]]:
    """The samples of the metrics in ``names``, labelled as Prometheus labels a target's."""
    url = URL(target)
    target_labels = {"instance": f"{url.host}:{url.port}", **side_labels}
    samples: dict[str, dict[SeriesId, float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name not in names:
                    continue
                labels = {
                    (f"exported_{k}" if k in target_labels else k): v
                    for k, v in sample.labels.items()
                }
                labels.update(target_labels)
                series = (target, tuple(sorted(labels.items())))
                samples.setdefault(sample.name, {})[series] = float(sample.value)
    except (ValueError, IndexError, KeyError, TypeError) as exc:  # what the parser raises
        raise SourcePayloadError(f"not Prometheus exposition text: {exc}") from None
    return samples


# ---------------------------------------------------------------------------------------------
# Evaluation: pure functions of a side's history and the grid


class _Ambiguous(Exception):
    """A bare selector matched several series: the whole query is unusable."""


class _Timeline:
    """A side's scrapes in time order, looked up by the step they fall on."""

    def __init__(self, scrapes: Sequence[_Scrape], half_step: float) -> None:
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


def _evaluate(query: Query, scrapes: Sequence[_Scrape], grid: Grid) -> Outcome:
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


def _span(timeline: _Timeline, t: float, range_s: float) -> Sequence[_Scrape] | str:
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


def _increases(sel: Selector, span: Iterable[_Scrape]) -> dict[SeriesId, float]:
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
