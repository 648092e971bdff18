"""Metric sources: where a canary's baseline and canary series come from.

A source answers one :class:`FetchRequest` (a canary's metrics over a window) with a
:class:`~analyzer.model.Window`. It never raises for missing data: a metric that could not be
fetched (source down, timeout, 5xx, malformed payload, empty result) comes back all-NaN with
``MetricData.error`` saying why, so the lifecycle records verdict ``none`` with the cause.
aiohttp and parser errors never leak out of this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from analyzer.metricdata import MetricKind
from analyzer.model import Side, Window

__all__ = ["FetchRequest", "MetricQuery", "MetricSource"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricQuery:
    """One metric to fetch: its templates by role (``kind.roles``: ``query`` for a series,
    ``events`` and ``exposure`` for a count)."""

    name: str
    kind: MetricKind
    templates: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchRequest:
    """A canary's metrics over [start, end] at ``step_s`` resolution (both ends included)."""

    canary_id: str
    metrics: tuple[MetricQuery, ...]
    baseline: Side
    canary: Side
    start: float
    end: float
    step_s: float
    variables: dict[str, str] = field(default_factory=dict)


class MetricSource(Protocol):
    """Anything that can fill a window for a canary."""

    async def fetch(self, request: FetchRequest) -> Window:
        """Fetch every metric of the request for both sides."""
        ...

    def forget(self, canary_id: str) -> None:
        """Drop whatever per-canary state the source keeps (the canary has finished)."""
        ...

    async def close(self) -> None:
        """Release connections and background work."""
        ...
