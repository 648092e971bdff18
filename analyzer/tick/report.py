"""What a recorded tick tells the operator: the daemon's telemetry and one ``tick.completed``
log line (the canary's id and service come bound from the tick's context)."""

from __future__ import annotations

import structlog

from analyzer.model import Canary, Window
from analyzer.telemetry import Telemetry
from analyzer.tick.evaluation import Evaluation
from analyzer.tick.lifecycle import Step

__all__ = ["report_tick"]

log = structlog.get_logger("canaryd.scheduler")


def report_tick(
    telemetry: Telemetry,
    saved: Canary,
    step: Step,
    ev: Evaluation,
    window: Window | str | None,
    *,
    lag_s: float,
    took_s: float,
) -> None:
    """Count the tick (verdict, duration, lag, metrics that came back without data) and log
    it."""
    telemetry.ticks.labels(verdict=str(step.verdict)).inc()
    telemetry.tick_duration.observe(took_s)
    telemetry.tick_lag.observe(lag_s)
    if isinstance(window, Window):
        for data in window.metrics.values():
            if data.error:
                telemetry.source_error(saved.id, data.name)
    log.info(
        "tick.completed",
        phase=str(saved.phase),
        stage=saved.stage_index,
        verdict=str(step.verdict),
        score=step.score,
        reason=step.reason,
        duration_s=round(took_s, 4),
        lag_s=round(lag_s, 4),
        no_data=ev.no_data,
    )
