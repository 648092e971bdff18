"""The replay source: a recording served as if it were Prometheus.

A request's step ``k`` at time ``t = start + k·step_s`` reads the recorded step
``round((t − recording start) / recording step_s)``; steps before or after the recording, and
recorded ``null``s, are NaN. ``rebase`` places the recording's first step at another time, so
that a daemon on the real clock can replay it live (a demo, say), while backtests use the
recording's own times.

As every source, it never raises for missing data: a metric the recording does not hold, one
recorded with another kind, or a request at another step length (a count over 30 s is not a
count over 60 s) comes back all-NaN with ``MetricData.error`` saying why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analyzer.metricdata import FloatArray, MetricData, missing_metric
from analyzer.model import Window
from analyzer.sources.protocol import FetchRequest, MetricQuery
from analyzer.sources.window import Grid

__all__ = ["Recorded", "ReplaySource"]

IndexArray = npt.NDArray[np.int64]


class Recorded(Protocol):
    """What the replay source reads of a recording (:class:`analyzer.offline.recording.Recording`
    is one; the source stays below the offline tools that parse and write the format)."""

    @property
    def name(self) -> str:
        """The recording's name, for error messages."""
        ...

    @property
    def start(self) -> float:
        """Seconds since the epoch of step 0."""
        ...

    @property
    def step_s(self) -> float:
        """Seconds between recorded steps."""
        ...

    @property
    def steps(self) -> int:
        """How many steps every metric holds."""
        ...

    @property
    def metrics(self) -> Mapping[str, MetricData]:
        """Every recorded metric by name."""
        ...


class ReplaySource:
    """A :class:`~analyzer.sources.MetricSource` over one recording.

    ``rebase`` (seconds since the epoch) is where the recording's first step is placed; by
    default its recorded ``start``.
    """

    def __init__(self, recording: Recorded, *, rebase: float | None = None) -> None:
        self.recording = recording
        self._start = recording.start if rebase is None else rebase

    def window(self, request: FetchRequest) -> Window:
        """The request's window from the recording (synchronous; :meth:`fetch` awaits this)."""
        grid = Grid.of(request)
        indices = self._indices(grid)
        metrics = {q.name: self._metric(q, request, indices, grid) for q in request.metrics}
        return Window(start=request.start, end=request.end, step_s=request.step_s, metrics=metrics)

    async def fetch(self, request: FetchRequest) -> Window:
        """Every metric of the request for both sides, read from the recording."""
        return self.window(request)

    def forget(self, canary_id: str) -> None:
        """Nothing to drop: the recording is shared by every canary and read, never changed."""

    async def close(self) -> None:
        """Nothing to release."""

    def _indices(self, grid: Grid) -> IndexArray:
        """The recorded step of every request step, or −1 where the recording has none."""
        times = grid.start + grid.step_s * np.arange(grid.steps, dtype=np.float64)
        step_s = self.recording.step_s
        k = np.rint((times - self._start) / step_s).astype(np.int64)
        inside = (k >= 0) & (k < self.recording.steps)
        return np.where(inside, k, -1)

    def _metric(
        self, query: MetricQuery, request: FetchRequest, indices: IndexArray, grid: Grid
    ) -> MetricData:
        recorded = self.recording.metrics.get(query.name)
        error = self._refusal(query, request, recorded)
        if error or recorded is None:
            return missing_metric(query.name, query.kind, grid.steps, error)
        return recorded.mapped(lambda values: _take(values, indices))

    def _refusal(
        self, query: MetricQuery, request: FetchRequest, recorded: MetricData | None
    ) -> str:
        name = self.recording.name
        if recorded is None:
            known = sorted(self.recording.metrics)
            return f"recording {name} has no metric {query.name!r} (it has {known})"
        if recorded.kind != query.kind:
            return f"recording {name} holds {query.name!r} as {recorded.kind}, not {query.kind}"
        if not math.isclose(request.step_s, self.recording.step_s, rel_tol=1e-9):
            return (
                f"recording {name} has {self.recording.step_s:g}s steps; "
                f"it cannot be replayed at {request.step_s:g}s steps"
            )
        return ""


def _take(values: FloatArray, indices: IndexArray) -> FloatArray:
    """``values[indices]`` with NaN where the index is −1."""
    out = np.full(indices.shape, np.nan, dtype=np.float64)
    inside = indices >= 0
    out[inside] = values[indices[inside]]
    return out
