"""Recordings and judge configs for the backtest and replay tests: the fixture recordings, the
shipped sequential config, a Kayenta-style config on the same metrics, and steady synthetic
recordings built to order."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from analyzer.configs.judgeconfig import JudgeConfig, load_config, parse_config
from analyzer.demo.simulator import ERROR_RATIO_QUERY, LATENCY_P99_QUERY
from analyzer.metricdata import CountData, CountSide, SeriesData, SeriesSide
from analyzer.offline.recording import Recording, Truth, load_recording
from support.fakes import T0
from support.paths import CONFIG_DIR, RECORDINGS

__all__ = [
    "KAYENTA_STYLE",
    "SEQUENTIAL",
    "fixture",
    "fixture_paths",
    "kayenta_style",
    "recording",
    "sequential",
]

SEQUENTIAL = CONFIG_DIR / "sequential-golden-signals.yaml"
KAYENTA_STYLE: dict[str, Any] = {
    "name": "kayenta-golden",
    "step": "60s",
    "analysis_interval": "10m",
    "warmup": "2m",
    "groups": {"errors": 70, "latency": 30},
    "metrics": [
        {
            "name": "error_rate",
            "group": "errors",
            "kind": "count",
            "judge": "mann-whitney",
            "direction": "increase",
            "critical": True,
            "query": ERROR_RATIO_QUERY,
            "effect_size": {"allowed_increase": 1.2, "critical_increase": 2.0},
        },
        {
            "name": "latency_p99",
            "group": "latency",
            "kind": "series",
            "judge": "mann-whitney",
            "direction": "increase",
            "query": LATENCY_P99_QUERY,
            "effect_size": {"allowed_increase": 1.1, "critical_increase": 1.5},
        },
    ],
}
"""Kayenta's way on the same data: Mann-Whitney on the per-step error ratio and on p99."""


def fixture(name: str) -> Recording:
    """``fixtures/recordings/<name>.json``, loaded."""
    return load_recording(RECORDINGS / f"{name}.json")


def sequential() -> JudgeConfig:
    """The shipped ``sequential-golden-signals`` config."""
    return load_config(SEQUENTIAL)


def kayenta_style(**overrides: Any) -> JudgeConfig:
    """:data:`KAYENTA_STYLE` with top-level fields replaced, validated."""
    return parse_config({**copy.deepcopy(KAYENTA_STYLE), **overrides})


def recording(
    steps: int,
    *,
    base_events: float = 10.0,
    canary_events: float = 10.0,
    exposure: float = 5000.0,
    latency: float = 0.24,
    canary_latency: float | None = None,
    step_s: float = 60.0,
    truth: Truth | None = None,
    name: str = "synthetic",
) -> Recording:
    """A steady recording: constant counts and a latency with a little deterministic wobble."""
    wobble = 0.01 * np.sin(np.arange(steps, dtype=np.float64))
    errors = CountData(
        name="error_rate",
        baseline=CountSide(events=np.full(steps, base_events), exposure=np.full(steps, exposure)),
        canary=CountSide(events=np.full(steps, canary_events), exposure=np.full(steps, exposure)),
    )
    p99 = SeriesData(
        name="latency_p99",
        baseline=SeriesSide(values=latency + wobble),
        canary=SeriesSide(values=(canary_latency or latency) - wobble),
    )
    return Recording(
        name=name,
        start=T0,
        step_s=step_s,
        steps=steps,
        metrics={"error_rate": errors, "latency_p99": p99},
        truth=truth,
    )


def fixture_paths() -> list[str]:
    """Every fixture recording's path, sorted by name."""
    return [str(p) for p in sorted(RECORDINGS.glob("*.json"))]
