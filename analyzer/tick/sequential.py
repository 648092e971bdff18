"""The sequential metrics of one poll: each anytime-valid test over the window so far.

``sequential-count`` (Lindon & Malek 2022) judges a count metric's events against its exposure,
``sequential-mean`` the paired per-step differences of a series metric; both are recomputed on
every poll from the whole window since the analysis started, which their guarantee allows
however often they are looked at. They share the config's α by e-Bonferroni: with ``m``
sequential metrics each fails at e ≥ m/α. A metric without usable data is undecided (e = 1).

Each outcome's reason is the judge's own, estimate first and proven bound second — "error_rate:
regression: rate 3.1× baseline (at least 1.02× proven; e = 41 ≥ 40)" — and that is the text
the rollback's webhook body carries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar, assert_never

from analyzer.configs.judgeconfig import JudgeConfig, MetricConfig
from analyzer.errors import InternalError
from analyzer.metricdata import CountData, MetricData, SeriesData, has_data
from analyzer.model import JudgeName, Window
from analyzer.tick.evaluation import SequentialJudge, SequentialOutcome
from judges.sequential.count import sequential_count
from judges.sequential.mean import sequential_mean
from judges.sequential.result import SequentialResult

__all__ = ["JudgedOutcome", "sequential_outcomes"]

_Data = TypeVar("_Data", SeriesData, CountData)
# The gauge judge's mixture is tuned for the width at this many steps at least (two hours of
# one-minute steps): serially dependent gauges carry fewer independent pieces than steps, and
# a narrower tuning lets the first, least certain looks decide.
MEAN_T_OPT = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgedOutcome(SequentialOutcome):
    """A sequential outcome worded by its judge: the estimate first, the proven bound second."""

    @property
    def reason(self) -> str:
        return f"{self.name}: {self.result.reason}"


def sequential_outcomes(config: JudgeConfig, window: Window) -> tuple[SequentialOutcome, ...]:
    """Every sequential metric's outcome; the e-Bonferroni split counts all of them."""
    count = sum(m.judge.sequential for m in config.metrics)
    out = []
    for metric in config.metrics:
        match metric.judge:
            case JudgeName.SEQUENTIAL_COUNT | JudgeName.SEQUENTIAL_MEAN as judge:
                data = window.metrics.get(metric.name)
                outcome = JudgedOutcome(
                    name=metric.name,
                    judge=judge,
                    critical=metric.critical,
                    direction=metric.direction,
                    result=_sequential_result(judge, metric, config, data, count),
                    has_data=data is not None and has_data(data),
                )
                out.append(outcome)
            case JudgeName.MANN_WHITNEY | JudgeName.THRESHOLD:
                pass
            case _:
                assert_never(metric.judge)
    return tuple(out)


def _sequential_result(
    judge: SequentialJudge,
    metric: MetricConfig,
    config: JudgeConfig,
    data: MetricData | None,
    metrics: int,
) -> SequentialResult:
    """The sequential test of one metric over the window; undecided without usable data."""
    if data is None or not has_data(data):
        return SequentialResult(
            e_value=1.0,
            estimate=math.nan,
            lower=-math.inf,
            upper=math.inf,
            steps=0,
            failed=False,
            proven=False,
            threshold=metrics / config.alpha,
            reason=(data.error or "no data") if data is not None else "not fetched",
        )
    match judge:
        case JudgeName.SEQUENTIAL_COUNT:
            counts = _of_kind(CountData, data, judge)
            b, c = counts.baseline, counts.canary
            return sequential_count(
                b.events,
                b.exposure,
                c.events,
                c.exposure,
                alpha=config.alpha,
                metrics=metrics,
                tolerance=metric.tolerance or 1.2,
                direction=metric.direction,
            )
        case JudgeName.SEQUENTIAL_MEAN:
            series = _of_kind(SeriesData, data, judge)
            return sequential_mean(
                series.baseline.values,
                series.canary.values,
                alpha=config.alpha,
                metrics=metrics,
                tolerance=metric.tolerance or 0.0,
                direction=metric.direction,
                t_opt=max(MEAN_T_OPT, round(config.analysis_interval / config.step)),
            )
        case _:
            assert_never(judge)


def _of_kind(kind: type[_Data], data: MetricData, judge: JudgeName) -> _Data:
    """``data`` as the kind ``judge`` needs; the config and the sources guarantee it."""
    if not isinstance(data, kind):
        msg = f"{data.name}: {judge} cannot judge {data.kind} data"
        raise InternalError(msg)
    return data
