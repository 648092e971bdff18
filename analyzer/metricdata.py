"""Metric data: what a source returns for one metric over a window, per side, typed per kind.

A metric's kind says what it holds per side and step (DESIGN.md §3): a ``series`` metric one
value (:class:`SeriesSide`), a ``count`` metric ``events`` and ``exposure`` (:class:`CountSide`).
:class:`SeriesData` and :class:`CountData` hold both sides of one metric, aligned on the
window's steps (NaN = missing); consumers ``match`` on the class, so a misspelt array or a
forgotten kind is a type error. Sources fill them by template :class:`Role`
(:func:`metric_data`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, TypeAlias, assert_never

import numpy as np
import numpy.typing as npt

__all__ = [
    "CountData",
    "CountSide",
    "FloatArray",
    "MetricData",
    "MetricKind",
    "Role",
    "SeriesData",
    "SeriesSide",
    "SideName",
    "has_data",
    "metric_data",
    "missing_metric",
]

FloatArray = npt.NDArray[np.float64]
ArrayMap = Callable[[FloatArray], FloatArray]
"""A function applied to every array of a metric (a slice, a re-indexing)."""


class SideName(StrEnum):
    """The deployment a value comes from."""

    BASELINE = "baseline"
    CANARY = "canary"


class Role(StrEnum):
    """A query template's role: a series metric's ``query``, a count metric's ``events`` and
    ``exposure``."""

    QUERY = "query"
    EVENTS = "events"
    EXPOSURE = "exposure"


class MetricKind(StrEnum):
    """What a metric's query returns per step: one value, or events and their exposure."""

    SERIES = "series"
    COUNT = "count"

    @property
    def roles(self) -> tuple[Role, ...]:
        """The query templates a metric of this kind has, in fetch order."""
        match self:
            case MetricKind.SERIES:
                return (Role.QUERY,)
            case MetricKind.COUNT:
                return (Role.EVENTS, Role.EXPOSURE)
            case _:
                assert_never(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesSide:
    """One side of a ``series`` metric: its value per step."""

    values: FloatArray

    @property
    def arrays(self) -> tuple[FloatArray, ...]:
        """Every array of the side."""
        return (self.values,)

    def mapped(self, f: ArrayMap) -> SeriesSide:
        """The side with ``f`` applied to its array."""
        return SeriesSide(values=f(self.values))


@dataclass(frozen=True, slots=True, kw_only=True)
class CountSide:
    """One side of a ``count`` metric: events (5xx, slow requests) and exposure (all requests)
    per step."""

    events: FloatArray
    exposure: FloatArray

    @property
    def arrays(self) -> tuple[FloatArray, ...]:
        """Every array of the side."""
        return (self.events, self.exposure)

    def mapped(self, f: ArrayMap) -> CountSide:
        """The side with ``f`` applied to each array."""
        return CountSide(events=f(self.events), exposure=f(self.exposure))


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesData:
    """A ``series`` metric over a window, both sides."""

    kind: ClassVar[MetricKind] = MetricKind.SERIES
    name: str
    baseline: SeriesSide
    canary: SeriesSide
    error: str = ""
    """Why the metric has no data this time (source down, empty result, ...), if so."""

    def mapped(self, f: ArrayMap) -> SeriesData:
        """The metric with ``f`` applied to every array of both sides."""
        return SeriesData(
            name=self.name,
            baseline=self.baseline.mapped(f),
            canary=self.canary.mapped(f),
            error=self.error,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CountData:
    """A ``count`` metric over a window, both sides."""

    kind: ClassVar[MetricKind] = MetricKind.COUNT
    name: str
    baseline: CountSide
    canary: CountSide
    error: str = ""
    """Why the metric has no data this time (source down, empty result, ...), if so."""

    def mapped(self, f: ArrayMap) -> CountData:
        """The metric with ``f`` applied to every array of both sides."""
        return CountData(
            name=self.name,
            baseline=self.baseline.mapped(f),
            canary=self.canary.mapped(f),
            error=self.error,
        )


MetricData: TypeAlias = SeriesData | CountData
"""One metric over a window, per side, aligned on the window's steps (NaN = missing)."""


def metric_data(
    name: str,
    kind: MetricKind,
    arrays: Mapping[tuple[SideName, Role], FloatArray],
    *,
    error: str = "",
) -> MetricData:
    """A metric of ``kind`` from its arrays by side and template role (all of them)."""
    match kind:
        case MetricKind.SERIES:
            return SeriesData(
                name=name,
                baseline=SeriesSide(values=arrays[SideName.BASELINE, Role.QUERY]),
                canary=SeriesSide(values=arrays[SideName.CANARY, Role.QUERY]),
                error=error,
            )
        case MetricKind.COUNT:
            return CountData(
                name=name,
                baseline=_count_side(arrays, SideName.BASELINE),
                canary=_count_side(arrays, SideName.CANARY),
                error=error,
            )
        case _:
            assert_never(kind)


def _count_side(arrays: Mapping[tuple[SideName, Role], FloatArray], side: SideName) -> CountSide:
    return CountSide(events=arrays[side, Role.EVENTS], exposure=arrays[side, Role.EXPOSURE])


def missing_metric(name: str, kind: MetricKind, steps: int, error: str) -> MetricData:
    """A metric of ``kind`` that is all NaN over ``steps`` steps, ``error`` saying why."""
    arrays = {(side, role): np.full(steps, np.nan) for side in SideName for role in kind.roles}
    return metric_data(name, kind, arrays, error=error)


def has_data(data: MetricData) -> bool:
    """Whether the metric can be judged: no error, and a finite value in every array."""
    if data.error:
        return False
    return all(np.isfinite(a).any() for a in (*data.baseline.arrays, *data.canary.arrays))
