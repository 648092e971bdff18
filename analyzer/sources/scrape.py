"""The embedded default source: scrape each side's ``/metrics`` directly, no Prometheus needed.

Every :meth:`ScrapeSource.fetch` scrapes all targets of both sides *now* (the injected clock's
time), attaches the side's labels to every sample as Prometheus attaches target labels (so the
``${selector}`` matchers select them; a clashing scraped label becomes ``exported_<name>``),
and appends the scrape to a per-(canary, side) history that reaches back one query range and
one step before the window. Each metric's rendered queries are then evaluated over that history
on the window's step grid. Only the query shapes in
:data:`~analyzer.sources.promql.parse.SUPPORTED_SHAPES` can be evaluated; :func:`check_supported`
tells a config author up front. How a query is evaluated over the scrapes is
:mod:`analyzer.sources.timeline`'s; this module owns the HTTP fetching, the parsing of the
exposition text and the histories.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Mapping

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from analyzer.clock import Clock
from analyzer.errors import InvalidInput, SourceError, SourcePayloadError, SourceUnavailable
from analyzer.metricdata import SideName
from analyzer.model import Side, Window
from analyzer.sources.http import map_client_errors
from analyzer.sources.promql.parse import GaugeQuery, parse
from analyzer.sources.protocol import FetchRequest
from analyzer.sources.timeline import Scrape, SeriesId, evaluate_query
from analyzer.sources.window import Grid, assemble_window, render_request, sides

__all__ = ["ScrapeSource", "check_supported"]

_ACCEPT = {"Accept": "text/plain;version=0.0.4;q=1.0, */*;q=0.1"}


def check_supported(rendered_query: str, *, where: str = "query") -> None:
    """Raise :class:`InvalidInput` on ``where``, listing the supported shapes, if the scrape
    source cannot evaluate ``rendered_query``."""
    parse(rendered_query, where=where)


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
        self._history: dict[tuple[str, SideName], list[Scrape]] = {}

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
        for side, task in zip(SideName, tasks, strict=True):
            self._remember((request.canary_id, side), task.result(), keep_from)
        outcomes = [
            (q, evaluate_query(p, self._history[(request.canary_id, q.side)], grid))
            for q, p in zip(queries, parsed, strict=True)
        ]
        return assemble_window(request, grid, outcomes)

    def forget(self, canary_id: str) -> None:
        """Drop a canary's scrape histories, both sides: all the source keeps per canary."""
        for side in SideName:
            self._history.pop((canary_id, side), None)

    def remembered(self) -> frozenset[str]:
        """The canaries the source holds scrape history for (what :meth:`forget` releases)."""
        return frozenset(canary_id for canary_id, _ in self._history)

    async def close(self) -> None:
        """Drop every history; the session belongs to the caller."""
        self._history.clear()

    def _remember(self, key: tuple[str, SideName], scrape: Scrape, keep_from: float) -> None:
        kept = [s for s in self._history.get(key, ()) if s.at >= keep_from and s.at != scrape.at]
        bisect.insort(kept, scrape, key=lambda s: s.at)
        self._history[key] = kept

    async def _scrape(self, side: Side, names: frozenset[str], at: float) -> Scrape:
        if not side.targets:
            return Scrape(at=at, samples={}, failures=("the side has no scrape targets",))
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
        return Scrape(at=at, samples=samples, failures=tuple(failures))

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
