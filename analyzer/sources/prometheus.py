"""The Prometheus source: every metric's templates as range queries over the shared session.

For each metric and side the templates are rendered with that side's labels and run as
``GET {base}/api/v1/query_range`` concurrently, at most ``max_concurrency`` at a time — as a
form-encoded ``POST`` when the parameters are long (a 100 KB variable value does not belong in a
URL; Prometheus accepts both); redirects are not followed. Each
query must return a matrix with exactly one series; its samples are put on the window's step
grid. Every outage — connection refused, timeout, HTTP 4xx/5xx, malformed JSON, status
``error``, an empty or ambiguous result — comes back as an all-NaN metric whose ``error`` says
why; aiohttp's exceptions are translated in :func:`map_client_errors` and never escape. A
template problem is a config error and does raise (:class:`~analyzer.errors.InvalidInput`).

The fetch plan (:func:`render_request`), the step grid (:class:`Grid`) and the assembly of
results into a :class:`~analyzer.model.Window` are shared with the scrape source.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
import numpy as np
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from yarl import URL

from analyzer.errors import InvalidInput, SourceError, SourcePayloadError, SourceUnavailable
from analyzer.model import Window
from analyzer.sources.http import map_client_errors
from analyzer.sources.promql.render import duration
from analyzer.sources.protocol import FetchRequest
from analyzer.sources.window import Grid, Outcome, assemble_window, render_request

__all__ = ["POST_OVER_BYTES", "PrometheusSource"]


class _Model(BaseModel):
    # Prometheus adds fields over time (warnings, infos, stats): allowed, but types are checked.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Data(_Model):
    resultType: str  # noqa: N815 — Prometheus' field name
    result: Any


class _Envelope(_Model):
    status: Literal["success", "error"]
    data: _Data | None = None
    errorType: str = ""  # noqa: N815 — Prometheus' field name
    error: str = ""


class _Series(_Model):
    metric: dict[str, str]
    values: list[tuple[float, str]] = []  # a native-histogram series has none


_MATRIX = TypeAdapter(list[_Series])
POST_OVER_BYTES = 4096
"""Range queries whose encoded parameters are longer than this go as a form body."""


class PrometheusSource:
    """A :class:`~analyzer.sources.MetricSource` over Prometheus' HTTP API (range queries).

    ``session`` is the process's shared session; the caller owns and closes it.
    """

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 10.0,
        max_concurrency: int = 64,
    ) -> None:
        url = URL(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise InvalidInput("base_url", f"need an http(s) URL with a host, got {base_url!r}")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise InvalidInput("timeout_s", f"must be finite and > 0, got {timeout_s!r}")
        if max_concurrency < 1:
            raise InvalidInput("max_concurrency", f"must be ≥ 1, got {max_concurrency!r}")
        self._url = url / "api/v1/query_range"
        self._session = session
        self._timeout_s = timeout_s
        self._limit = asyncio.Semaphore(max_concurrency)

    async def fetch(self, request: FetchRequest) -> Window:
        """Every metric of the request for both sides; outages come back as all-NaN metrics."""
        grid = Grid.of(request)
        queries = render_request(request)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._outcome(q.text, grid)) for q in queries]
        return assemble_window(
            request, grid, zip(queries, (t.result() for t in tasks), strict=True)
        )

    def forget(self, canary_id: str) -> None:
        """Nothing to drop: every fetch asks Prometheus afresh, so no state is kept per canary."""

    async def close(self) -> None:
        """Nothing to release: the session belongs to the caller."""

    async def _outcome(self, query: str, grid: Grid) -> Outcome:
        try:
            async with self._limit:
                status, body = await self._get(query, grid)
            return _matrix_outcome(_parse_matrix(status, body), grid)
        except SourceError as exc:
            return Outcome(values=grid.missing(), error=str(exc))

    async def _get(self, query: str, grid: Grid) -> tuple[int, bytes]:
        params = {
            "query": query,
            "start": repr(grid.start),
            "end": repr(grid.time(grid.steps - 1)),
            "step": repr(grid.step_s),
            "timeout": duration(self._timeout_s, field="timeout_s"),
        }
        client_timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        options: dict[str, Any] = {"timeout": client_timeout, "allow_redirects": False}
        if len(urlencode(params)) > POST_OVER_BYTES:
            options["data"] = params
            method = "POST"
        else:
            options["params"] = params
            method = "GET"
        with map_client_errors(self._timeout_s):
            async with asyncio.timeout(self._timeout_s):
                async with self._session.request(method, self._url, **options) as response:
                    return response.status, await response.read()


def _parse_matrix(status: int, body: bytes) -> list[_Series]:
    """The series of a range-query response; anything unusable raises :class:`SourceError`."""
    envelope = _envelope(body)
    if 300 <= status < 400:
        raise SourcePayloadError(f"HTTP {status}: redirects are not followed")
    if status >= 400:
        detail = _error_detail(envelope) if envelope else _snippet(body)
        error_class = SourceUnavailable if status >= 500 else SourcePayloadError
        raise error_class(f"HTTP {status}: {detail}")
    if envelope is None:
        raise SourcePayloadError(f"malformed JSON in the response: {_snippet(body)}")
    if envelope.status == "error":
        raise SourcePayloadError(f"Prometheus error: {_error_detail(envelope)}")
    if envelope.data is None or envelope.data.resultType != "matrix":
        got = envelope.data.resultType if envelope.data else "no data"
        raise SourcePayloadError(f"expected resultType 'matrix', got {got!r}")
    try:
        return _MATRIX.validate_python(envelope.data.result)
    except ValidationError as exc:
        raise SourcePayloadError(f"unexpected matrix: {_first_problem(exc)}") from None


def _envelope(body: bytes) -> _Envelope | None:
    """The decoded response, or None when it is not JSON shaped like Prometheus' answers."""
    try:
        return _Envelope.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _matrix_outcome(series: list[_Series], grid: Grid) -> Outcome:
    """The one series on the grid; none, several, or only NaN/±Inf samples are errors."""
    if not series:
        return Outcome(values=grid.missing(), error="empty result")
    if len(series) > 1:
        msg = (
            f"query returned {len(series)} series with different labels; "
            "aggregate it (e.g. sum(...))"
        )
        return Outcome(values=grid.missing(), error=msg)
    try:
        samples = [(t, float(v)) for t, v in series[0].values]
    except ValueError as exc:
        return Outcome(values=grid.missing(), error=f"unexpected sample value: {exc}")
    raw = np.array([v for _, v in samples], dtype=np.float64)
    times = np.array([t for t, _ in samples], dtype=np.float64)
    finite = np.isfinite(raw)
    values = grid.align(times, np.where(finite, raw, np.nan))
    if np.isfinite(values).any():
        return Outcome(values=values)
    if not finite.all():
        bad = int((~finite).sum())
        return Outcome(values=values, error=f"no usable samples: {bad} were NaN or ±Inf")
    return Outcome(values=values, error="no samples on the window's steps")


def _error_detail(envelope: _Envelope) -> str:
    if envelope.error:
        return f"{envelope.errorType}: {envelope.error}" if envelope.errorType else envelope.error
    return f"status {envelope.status!r} without an error message"


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return repr(text[:limit] + ("…" if len(text) > limit else "")) if text else "(empty body)"


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" + (
        f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    )
