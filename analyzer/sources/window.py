"""The window plumbing every source shares: what to fetch, the step grid, and the assembly of
per-query outcomes into a :class:`~analyzer.model.Window`.

:func:`render_request` renders every template of a request for both sides (a template problem is
a config error and raises :class:`~analyzer.errors.InvalidInput`); :class:`Grid` is the window's
steps and puts samples on them; :func:`assemble_window` turns the outcomes into the window, a
metric with any failed query all-NaN with its ``error`` saying why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from analyzer.errors import InvalidInput
from analyzer.metricdata import FloatArray, MetricData, Role, SideName, metric_data, missing_metric
from analyzer.model import Side, Window
from analyzer.sources.promql.render import render
from analyzer.sources.protocol import FetchRequest

__all__ = [
    "Grid",
    "Outcome",
    "RenderedQuery",
    "assemble_window",
    "render_request",
    "sides",
]


def sides(request: FetchRequest) -> dict[SideName, Side]:
    """The request's sides by name, in :class:`~analyzer.metricdata.SideName` order."""
    return {SideName.BASELINE: request.baseline, SideName.CANARY: request.canary}


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedQuery:
    """One template of one metric rendered for one side."""

    metric: str
    side: SideName
    role: Role
    text: str

    @property
    def where(self) -> str:
        """Where the template sits in the judge config, for error messages."""
        return f"metrics.{self.metric}.query" + ("" if self.role is Role.QUERY else f".{self.role}")


def render_request(request: FetchRequest) -> list[RenderedQuery]:
    """Every template of the request rendered for both sides; config errors raise.

    ``${window}`` spans every step of the window: ``end - start + step_s``.
    """
    window_s = request.end - request.start + request.step_s
    rendered = []
    for metric in request.metrics:
        roles = metric.kind.roles
        if set(metric.templates) != set(roles):
            msg = f"a {str(metric.kind)!r} metric needs the templates {[str(r) for r in roles]}"
            raise InvalidInput(f"metrics.{metric.name}.query", msg)
        for role in roles:
            for name, side in sides(request).items():
                query = RenderedQuery(metric=metric.name, side=name, role=role, text="")
                text = render(
                    metric.templates[role],
                    labels=side.labels,
                    step_s=request.step_s,
                    window_s=window_s,
                    variables=request.variables,
                    where=query.where,
                )
                rendered.append(dataclasses.replace(query, text=text))
    return rendered


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """The window's steps: ``start + k·step_s`` for ``k = 0 .. steps-1``."""

    start: float
    step_s: float
    steps: int

    @classmethod
    def of(cls, request: FetchRequest) -> Grid:
        """The grid of a request; a window that is not one raises :class:`InvalidInput`."""
        if not (math.isfinite(request.step_s) and request.step_s > 0):
            raise InvalidInput("step_s", f"must be finite and > 0, got {request.step_s!r}")
        if not (math.isfinite(request.start) and math.isfinite(request.end)):
            raise InvalidInput("start", "start and end must be finite")
        if request.end < request.start:
            raise InvalidInput("end", "the window ends before it starts")
        window = Window(start=request.start, end=request.end, step_s=request.step_s, metrics={})
        return cls(start=request.start, step_s=request.step_s, steps=window.steps)

    def time(self, k: int) -> float:
        """Time of step ``k``."""
        return self.start + k * self.step_s

    def missing(self) -> FloatArray:
        """An all-NaN array, one per step."""
        return np.full(self.steps, np.nan)

    def align(self, times: FloatArray, values: FloatArray) -> FloatArray:
        """``values`` put on the steps their ``times`` fall within half a step of; NaN elsewhere."""
        out = self.missing()
        k = np.rint((times - self.start) / self.step_s).astype(np.int64)
        near = np.abs(times - (self.start + k * self.step_s)) <= self.step_s / 2
        keep = near & (k >= 0) & (k < self.steps)
        out[k[keep]] = values[keep]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One rendered query's values on the grid, or why there are none."""

    values: FloatArray
    error: str = ""


def assemble_window(
    request: FetchRequest, grid: Grid, outcomes: Iterable[tuple[RenderedQuery, Outcome]]
) -> Window:
    """The window of a request from its queries' outcomes.

    A metric any of whose queries failed is all-NaN on both sides, its ``error`` naming the
    failed side and role; a half-fetched metric would be judged on half the evidence.
    """
    by_metric: dict[str, list[tuple[RenderedQuery, Outcome]]] = {}
    for query, outcome in outcomes:
        by_metric.setdefault(query.metric, []).append((query, outcome))
    metrics: dict[str, MetricData] = {}
    for metric in request.metrics:
        results = by_metric.get(metric.name, [])
        error = _combined_error(results)
        if error:
            metrics[metric.name] = missing_metric(metric.name, metric.kind, grid.steps, error)
        else:
            arrays = {(query.side, query.role): outcome.values for query, outcome in results}
            metrics[metric.name] = metric_data(metric.name, metric.kind, arrays)
    return Window(start=request.start, end=request.end, step_s=grid.step_s, metrics=metrics)


def _combined_error(results: list[tuple[RenderedQuery, Outcome]]) -> str:
    """``"baseline, canary: <why>"``: failures grouped by their message, in query order."""
    where: dict[str, list[str]] = {}
    for query, outcome in results:
        if outcome.error:
            name = str(query.side) if query.role is Role.QUERY else f"{query.side} {query.role}"
            where.setdefault(outcome.error, []).append(name)
    return "; ".join(f"{', '.join(names)}: {message}" for message, names in where.items())
