"""A Kayenta remote-judge request for the ``canaryd judge`` tests, and the command run on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support.cli import run

__all__ = ["judge_request", "run_judge"]


def _values(seed: int, loc: float, n: int) -> list[float]:
    return [round(float(v), 4) for v in np.random.default_rng(seed).normal(loc, loc / 20, n)]


def judge_request() -> dict[str, Any]:
    """Two metrics in two groups: errors unchanged, latency 30 % higher with a missing point."""
    return {
        "canaryConfig": {
            "name": "checkout",
            "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
            "classifier": {"groupWeights": {"errors": 60, "latency": 40}},
            "metrics": [
                {
                    "name": "errors",
                    "groups": ["errors"],
                    "query": {"type": "prometheus", "customInlineTemplate": "..."},
                    "scopeName": "default",
                    "analysisConfigurations": {
                        "canary": {"direction": "increase", "critical": True}
                    },
                },
                {
                    "name": "latency",
                    "groups": ["latency"],
                    "analysisConfigurations": {
                        "canary": {
                            "direction": "either",
                            "nanStrategy": "remove",
                            "effectSize": {"allowedIncrease": 1.05},
                        }
                    },
                },
            ],
        },
        "metricSetPairList": [
            {
                "name": "errors",
                "id": "pair-1",
                "tags": {"instance": "a"},
                "values": {"control": _values(1, 10, 20), "experiment": _values(2, 10, 20)},
            },
            {
                "name": "latency",
                "id": "pair-2",
                "tags": {},
                "values": {
                    "control": _values(3, 100, 20),
                    "experiment": [*_values(4, 130, 19), None],
                },
            },
        ],
        "scoreThresholds": {"pass": 75, "marginal": 50},
    }


def run_judge(
    request: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run `canaryd judge FILE` in-process on ``request`` (a dict, or raw text); (exit code,
    stdout, stderr)."""
    path = tmp_path / "request.json"
    path.write_text(request if isinstance(request, str) else json.dumps(request), encoding="utf-8")
    return run(["judge", str(path)], capsys)
