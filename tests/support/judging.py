"""Windows for the judging step's tests, built by hand or from deterministic traffic: count
and series metrics per side, a metric the source could not fetch, and the base config with
sequential judges."""

from __future__ import annotations

from typing import Any

import numpy as np

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.metricdata import (
    CountData,
    CountSide,
    MetricData,
    MetricKind,
    SeriesData,
    SeriesSide,
    missing_metric,
)
from analyzer.model import Side, Window
from analyzer.sources.protocol import FetchRequest, MetricQuery
from support.fakes import T0, MakeConfig, Traffic
from support.queries import STEP

__all__ = [
    "arr",
    "counts",
    "healthy_latency",
    "missing",
    "sequential_config",
    "series",
    "traffic_window",
    "window",
]


def window(*metrics: MetricData) -> Window:
    """A window as long as the metrics' arrays, on the 60 s grid from T0."""
    steps = max((a.size for m in metrics for a in m.canary.arrays), default=1)
    named = {m.name: m for m in metrics}
    return Window(start=T0, end=T0 + (steps - 1) * STEP, step_s=STEP, metrics=named)


def arr(values: Any) -> np.ndarray:
    """Float64 array."""
    return np.asarray(values, dtype=np.float64)


def counts(
    canary: tuple[Any, Any], baseline: tuple[Any, Any], *, name: str = "error_rate", error: str = ""
) -> MetricData:
    """A count metric from (events, exposure) per side."""
    return CountData(
        name=name,
        canary=CountSide(events=arr(canary[0]), exposure=arr(canary[1])),
        baseline=CountSide(events=arr(baseline[0]), exposure=arr(baseline[1])),
        error=error,
    )


def series(canary: Any, baseline: Any, *, name: str = "latency_p99", error: str = "") -> MetricData:
    """A series metric from the values per side."""
    return SeriesData(
        name=name,
        canary=SeriesSide(values=arr(canary)),
        baseline=SeriesSide(values=arr(baseline)),
        error=error,
    )


def missing(name: str, kind: MetricKind, error: str, steps: int = 5) -> MetricData:
    """A metric the source could not fetch: all NaN, with the cause."""
    return missing_metric(name, kind, steps, error)


def traffic_window(config: JudgeConfig, traffic: Traffic, steps: int = 11) -> Window:
    """The window a FakeSource with ``traffic`` returns for ``steps`` steps of every metric."""
    queries = tuple(
        MetricQuery(name=m.name, kind=m.kind, templates=m.templates()) for m in config.metrics
    )
    request = FetchRequest(
        canary_id="c-1",
        metrics=queries,
        baseline=Side(labels={"deployment": "base"}),
        canary=Side(labels={"deployment": "canary"}),
        start=T0,
        end=T0 + (steps - 1) * STEP,
        step_s=STEP,
    )
    return traffic(request)


def healthy_latency(steps: int) -> MetricData:
    """A latency metric where both sides agree."""
    rng = np.random.default_rng(7)
    return series(0.2 + 0.01 * rng.standard_normal(steps), 0.2 + 0.01 * rng.standard_normal(steps))


def sequential_config(make_config: MakeConfig) -> JudgeConfig:
    """The base config with errors judged by sequential-count and p99 by sequential-mean."""
    body = make_config().model_dump(mode="json", by_alias=True)
    errors, latency = body["metrics"]
    errors |= {"judge": "sequential-count", "tolerance": 1.2}
    latency |= {"judge": "sequential-mean", "tolerance": 0.025}
    return make_config(metrics=[errors, latency])
