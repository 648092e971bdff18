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

A scrape is bounded: only targets the scrape allow-list admits (:func:`check_scrape_target`, at
registration and again before each scrape; the daemon's session checks the address it connects
to), no redirects followed, the body read in chunks up to ``max_bytes``, and connecting, reading
and parsing all within ``timeout_s``. Parsing and evaluation run in a worker thread, so a huge
exposition never stalls the loop. A failed scrape says why in a fixed form — the status, or the
content type and size of what came instead — never any of the body or the connection's details.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
import time
from collections.abc import Collection, Iterator, Mapping, Sequence

import aiohttp
from prometheus_client.parser import text_fd_to_metric_families
from yarl import URL

from analyzer.clock import Clock
from analyzer.errors import InvalidInput, SourceError, SourcePayloadError, SourceUnavailable
from analyzer.metricdata import SideName
from analyzer.model import Side, Window
from analyzer.net.policy import AllowList, check_url
from analyzer.sources.http import map_client_errors
from analyzer.sources.promql.parse import GaugeQuery, Query, parse
from analyzer.sources.protocol import FetchRequest
from analyzer.sources.timeline import Scrape, SeriesId, evaluate_query
from analyzer.sources.window import (
    Grid,
    Outcome,
    RenderedQuery,
    assemble_window,
    render_request,
    sides,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ScrapeSource",
    "check_scrape_target",
    "check_side_targets",
    "check_supported",
]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
"""``CANARYD_SCRAPE_MAX_BYTES``' default: the largest exposition read from one target."""
_ACCEPT = {"Accept": "text/plain;version=0.0.4;q=1.0, */*;q=0.1"}
_CHUNK_BYTES = 64 * 1024
_DEADLINE_EVERY = 4096
_SAMPLE_NAME = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")
_Samples = dict[str, dict[SeriesId, float]]


def check_scrape_target(
    url: str, allowed: AllowList | Collection[str], *, field: str = "targets"
) -> None:
    """Raise :class:`InvalidInput` on ``field`` unless ``url`` may be scraped: an http(s) URL
    whose host ``allowed`` (``CANARYD_SCRAPE_ALLOWED_HOSTS``: host, host:port or CIDR entries)
    admits and that is not internal (:func:`analyzer.net.policy.check_url`)."""
    check_url(url, allowed, field=field, what="scrape")


def check_side_targets(
    targets: Sequence[str], allowed: AllowList | Collection[str], *, side: str
) -> None:
    """:func:`check_scrape_target` for each of a registration's side's targets, the field
    named ``<side>.targets.<i>`` (422 at registration)."""
    for i, target in enumerate(targets):
        check_scrape_target(target, allowed, field=f"{side}.targets.{i}")


def check_supported(rendered_query: str, *, where: str = "query") -> None:
    """Raise :class:`InvalidInput` on ``where``, listing the supported shapes, if the scrape
    source cannot evaluate ``rendered_query``."""
    parse(rendered_query, where=where)


class ScrapeSource:
    """A :class:`~analyzer.sources.MetricSource` that scrapes the sides' targets itself.

    ``session`` is the caller's (who closes it); the daemon's enforces the scrape allow-list on
    the addresses it connects to. ``allowed_hosts``, when given, is checked before every scrape
    too (None leaves it to the session alone).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 5.0,
        max_concurrency: int = 64,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allowed_hosts: AllowList | Collection[str] | None = None,
        clock: Clock,
    ) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise InvalidInput("timeout_s", f"must be finite and > 0, got {timeout_s!r}")
        if max_concurrency < 1:
            raise InvalidInput("max_concurrency", f"must be ≥ 1, got {max_concurrency!r}")
        if max_bytes < 1:
            raise InvalidInput("max_bytes", f"must be ≥ 1, got {max_bytes!r}")
        self._session = session
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._allowed = None if allowed_hosts is None else AllowList.of(allowed_hosts)
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
        histories = [self._history[(request.canary_id, q.side)] for q in queries]
        # a history is replaced, never changed in place: the worker reads a stable snapshot
        outcomes = await asyncio.to_thread(_evaluate, queries, parsed, histories, grid)
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
    ) -> tuple[_Samples, str]:
        try:
            if self._allowed is not None:
                check_scrape_target(target, self._allowed)
        except InvalidInput:
            return {}, f"scrape of {target} failed: not an allowed scrape target"
        try:
            async with self._limit:
                with map_client_errors(self._timeout_s):
                    return await self._scrape_target(target, labels, names), ""
        except SourceError as exc:
            return {}, f"scrape of {target} failed: {exc}"

    async def _scrape_target(
        self, target: str, labels: Mapping[str, str], names: frozenset[str]
    ) -> _Samples:
        """Connect, read and parse within the one timeout; parsing off the loop."""
        deadline = time.monotonic() + self._timeout_s
        async with asyncio.timeout(self._timeout_s):
            body, content_type = await self._get(target)
            parse_args = (body, content_type, target, labels, names, deadline)
            return await asyncio.to_thread(_samples, *parse_args)

    async def _get(self, target: str) -> tuple[bytes, str]:
        """The body of a 200 answer, at most ``max_bytes`` of it, and its content type."""
        client_timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        async with self._session.get(
            target, headers=_ACCEPT, timeout=client_timeout, allow_redirects=False
        ) as response:
            if response.status != 200:
                raise SourceUnavailable(f"HTTP {response.status}")
            too_large = SourcePayloadError(f"the body is over {self._max_bytes} bytes")
            if (response.content_length or 0) > self._max_bytes:
                raise too_large
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
                body += chunk
                if len(body) > self._max_bytes:
                    raise too_large
            return bytes(body), response.content_type


def _evaluate(
    queries: Sequence[RenderedQuery],
    parsed: Sequence[Query],
    histories: Sequence[Sequence[Scrape]],
    grid: Grid,
) -> list[tuple[RenderedQuery, Outcome]]:
    """Every query over its side's history (in a worker thread)."""
    return [
        (q, evaluate_query(p, history, grid))
        for q, p, history in zip(queries, parsed, histories, strict=True)
    ]


def _samples(  # noqa: PLR0917 — one call, from a worker thread
    body: bytes,
    content_type: str,
    target: str,
    side_labels: Mapping[str, str],
    names: frozenset[str],
    deadline: float,
) -> _Samples:
    """The samples of the metrics in ``names``, labelled as Prometheus labels a target's.

    A body that is not exposition text fails with its content type and size only (nothing of
    it reaches the evidence); parsing past ``deadline`` (monotonic) stops."""
    not_exposition = SourcePayloadError(
        f"not Prometheus exposition text ({content_type or 'no content type'}, {len(body)} bytes)"
    )
    url = URL(target)
    target_labels = {"instance": f"{url.host}:{url.port}", **side_labels}
    samples: _Samples = {}
    try:
        lines = _wanted_lines(body.decode("utf-8"), names, deadline)
        for family in text_fd_to_metric_families(lines):  # type: ignore[arg-type]  # it only iterates
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
    except (ValueError, IndexError, KeyError, TypeError):  # what the parser (and decode) raise
        raise not_exposition from None
    return samples


def _wanted_lines(text: str, names: frozenset[str], deadline: float) -> Iterator[str]:
    """The lines the parser needs for ``names``: comments, and samples that may be of them
    (a counter's ``x`` is read as ``x_total``; a quoted name is kept). Past ``deadline``
    (monotonic) the parse stops, checked every few thousand lines."""
    for number, line in enumerate(text.split("\n")):
        if number % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
            raise SourceUnavailable("timed out while parsing")
        name = _SAMPLE_NAME.match(line)
        if name is None or name[1] in names or f"{name[1]}_total" in names:
            yield line
