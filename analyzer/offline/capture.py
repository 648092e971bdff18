"""Capture: a past window of a judge config's metrics, from Prometheus into a recording.

For every metric, template role and side the config's query is rendered with that side's
labels (exactly as the daemon renders it) and run as one range query over [start, end] at the
step. The answers are put on the recording's step grid; a step Prometheus has no sample for,
or a NaN/±Inf sample, is recorded as ``null``.

This is a batch tool and uses prometheus-api-client's ``PrometheusConnect.custom_query_range``,
which is **synchronous** (``requests`` underneath): call :func:`capture` only outside any event
loop — the CLI is synchronous — or from async code through ``asyncio.to_thread``; called on a
running loop it refuses rather than stall it. The daemon's hot path does not use this client
for that reason: its Prometheus source speaks aiohttp on the shared session.

The client's exceptions (``requests``' and ``PrometheusApiClientException``) are translated in
:func:`_map_client_errors` into :class:`~analyzer.errors.SourceError`\\ s naming the query.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from urllib3.util.retry import Retry
from yarl import URL

from analyzer.configs.judgeconfig import JudgeConfig, MetricConfig
from analyzer.errors import InvalidInput, SourceError, SourcePayloadError, SourceUnavailable
from analyzer.metricdata import FloatArray, MetricData, Role, SideName, metric_data
from analyzer.offline.recording import Recording, dump_recording, parse_recording
from analyzer.sources.promql.render import render, selector
from analyzer.sources.window import Grid

__all__ = ["MAX_POINTS", "Captured", "capture"]

MAX_POINTS = 11_000
"""Prometheus refuses range queries of more points per series than this."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Captured:
    """The recording, and notes on what was recorded as missing and why."""

    recording: Recording
    notes: tuple[str, ...] = ()


class _Series(BaseModel):
    # Prometheus adds fields over time: allowed, but the types of these are checked.
    model_config = ConfigDict(extra="ignore", frozen=True)
    metric: dict[str, str]
    values: list[tuple[float, str]] = []


_MATRIX = TypeAdapter(list[_Series])


def _refuse_on_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    msg = "capture() blocks on HTTP: call it outside the event loop or via asyncio.to_thread"
    raise RuntimeError(msg)


def _grid(start: datetime, end: datetime, step_s: float) -> Grid:
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise InvalidInput(name, "give a time zone, e.g. 2026-01-01T00:00:00Z")
    if not (math.isfinite(step_s) and step_s > 0):
        raise InvalidInput("step_s", f"must be finite and > 0, got {step_s!r}")
    first = float(round(start.timestamp()))  # the client sends whole seconds
    if end.timestamp() < first:
        raise InvalidInput("end", f"{end.isoformat()} is before the start {start.isoformat()}")
    steps = math.floor((end.timestamp() - first) / step_s + 1e-9) + 1
    if steps > MAX_POINTS:
        msg = f"{steps} steps of {step_s:g}s, more than Prometheus' {MAX_POINTS} points per query"
        raise InvalidInput("end", msg)
    return Grid(start=first, step_s=step_s, steps=steps)


def _check(
    prometheus_url: str,
    config: JudgeConfig,
    variables: Mapping[str, str],
    labels: Mapping[SideName, Mapping[str, str]],
) -> None:
    url = URL(prometheus_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidInput("prometheus_url", f"need an http(s) URL, got {prometheus_url!r}")
    undeclared = sorted(set(variables) - set(config.variables))
    if undeclared:
        known = sorted(config.variables)
        raise InvalidInput(f"variables.{undeclared[0]}", f"not declared by the config ({known})")
    for side, matchers in labels.items():
        if not matchers:
            raise InvalidInput(
                str(side), "give at least one label, e.g. deployment=checkout-canary"
            )
        try:  # the matchers every query will get
            selector(matchers)
        except InvalidInput as exc:
            raise InvalidInput(f"{side}.{exc.field}", exc.message) from None


@contextlib.contextmanager
def _map_client_errors(where: str) -> Iterator[None]:
    """The one place the client's and ``requests``' exceptions become :class:`SourceError`."""
    try:
        yield
    except PrometheusApiClientException as exc:
        raise SourcePayloadError(f"{where}: Prometheus refused the query: {exc}") from exc
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError) as exc:
        raise SourceUnavailable(f"{where}: cannot reach Prometheus: {exc}") from exc
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        msg = f"{where}: unusable answer: {type(exc).__name__}: {exc}"
        raise SourcePayloadError(msg) from exc


def _values(result: Any, grid: Grid, where: str) -> tuple[FloatArray, str]:
    """The one series of a range query on the grid, and a note when nothing came back."""
    try:
        series = _MATRIX.validate_python(result)
    except ValidationError as exc:
        raise SourcePayloadError(f"{where}: unexpected matrix: {exc.errors()[0]['msg']}") from None
    if not series:
        note = (
            f"{where}: empty result, recorded as missing (if no series means zero, "
            "end the query with `or vector(0)`)"
        )
        return grid.missing(), note
    if len(series) > 1:
        msg = f"{where}: {len(series)} series with different labels; aggregate it (e.g. sum(...))"
        raise SourcePayloadError(msg)
    try:
        raw = np.array([float(v) for _, v in series[0].values], dtype=np.float64)
    except ValueError as exc:
        raise SourcePayloadError(f"{where}: unexpected sample value: {exc}") from None
    times = np.array([t for t, _ in series[0].values], dtype=np.float64)
    return grid.align(times, np.where(np.isfinite(raw), raw, np.nan)), ""


def capture(
    config: JudgeConfig,
    *,
    prometheus_url: str,
    baseline: Mapping[str, str],
    canary: Mapping[str, str],
    start: datetime,
    end: datetime,
    name: str,
    step_s: float | None = None,
    variables: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    retries: int = 2,
) -> Captured:
    """Record ``config``'s metrics for a baseline/canary label pair over [start, end].

    Synchronous (see the module docstring): outside an event loop, or via
    ``asyncio.to_thread``. ``step_s`` defaults to the config's step. Raises
    :class:`InvalidInput` naming the argument for bad input, and
    :class:`~analyzer.errors.SourceError` naming the query when Prometheus fails.
    """
    _refuse_on_loop()
    variables = {**config.variables, **(variables or {})}
    labels = {SideName.BASELINE: dict(baseline), SideName.CANARY: dict(canary)}
    _check(prometheus_url, config, variables, labels)
    grid = _grid(start, end, config.step if step_s is None else step_s)
    plan = _Plan(grid=grid, labels=labels, variables=variables)
    retry = Retry(total=retries, backoff_factor=0.5, status_forcelist=(502, 503, 504))
    notes: list[str] = []
    metrics: dict[str, MetricData] = {}
    timeout = math.ceil(timeout_s)  # the client's annotation says int; requests takes either
    with PrometheusConnect(url=prometheus_url, retry=retry, timeout=timeout) as client:
        for metric in config.metrics:
            metrics[metric.name] = plan.fetch(client, metric, notes)
    recording = Recording(
        name=name, start=grid.start, step_s=grid.step_s, steps=grid.steps, metrics=metrics
    )
    return Captured(recording=_validated(recording), notes=tuple(notes))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """What every query of one capture shares."""

    grid: Grid
    labels: dict[SideName, dict[str, str]]
    variables: dict[str, str]

    def fetch(
        self, client: PrometheusConnect, metric: MetricConfig, notes: list[str]
    ) -> MetricData:
        """One metric, every template role for both sides; empty results noted in ``notes``."""
        grid = self.grid
        templates = metric.templates()
        arrays: dict[tuple[SideName, Role], FloatArray] = {}
        for role in metric.kind.roles:
            for side in SideName:
                where = f"metrics.{metric.name}.{side}" + ("" if role is Role.QUERY else f".{role}")
                query = render(
                    templates[role],
                    labels=self.labels[side],
                    step_s=grid.step_s,
                    window_s=grid.steps * grid.step_s,
                    variables=self.variables,
                    where=where,
                )
                with _map_client_errors(where):
                    result = client.custom_query_range(
                        query,
                        start_time=_utc(grid.start),
                        end_time=_utc(grid.time(grid.steps - 1)),
                        step=repr(grid.step_s),
                    )
                arrays[side, role], note = _values(result, grid, where)
                notes.extend([note] if note else [])
        return metric_data(metric.name, metric.kind, arrays)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _validated(recording: Recording) -> Recording:
    """The recording as it will be read back: what Prometheus sent must fit the format."""
    try:
        return parse_recording(dump_recording(recording), source=recording.name)
    except InvalidInput as exc:
        msg = f"the captured data is not a valid recording: {exc}"
        raise SourceError(msg) from None
