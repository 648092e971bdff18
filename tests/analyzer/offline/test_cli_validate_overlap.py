"""`canaryd validate` warns, naming the metric, when a query's range overlaps the next steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from analyzer.cli import main
from support.configs import load

OVERLAPPING = (
    "histogram_quantile(0.99, sum by (le) "
    "(increase(http_request_duration_seconds_bucket{${selector}}[10s])))"
)


def _write(tmp_path: Path, query: str) -> Path:
    body = load(
        "latency-only",
        metrics=["latency_p99", "latency_p50"],
        step="2s",
        queries={"latency_p99": query},
        analysis_interval="1m",
        lookback=None,
        warmup="0s",
    )
    path = tmp_path / "overlapping.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


class TestValidateOverlap:
    """Overlapping samples are a warning: the config is valid, exit 0."""

    def test_ten_second_range_at_a_two_second_step(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """[10s] at a 2 s step: exit 0, one warning on stderr naming latency_p99 and its
        overlap of the next four samples; latency_p50 ([${step}]) is not named."""
        path = _write(tmp_path, OVERLAPPING)
        assert main(["validate", str(path)]) == 0
        captured = capsys.readouterr()
        assert f"{path}: ok — " in captured.out
        (warning,) = captured.err.splitlines()
        assert warning.startswith(f"canaryd validate: warning: {path}: latency_p99: ")
        assert "range [10s] is longer than the step (2s)" in warning
        assert "each sample overlaps the next 4" in warning
        assert "latency_p50" not in captured.err

    def test_step_range_is_silent(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The same config with [${step}] validates without a warning."""
        path = _write(tmp_path, OVERLAPPING.replace("[10s]", "[${step}]"))
        assert main(["validate", str(path)]) == 0
        assert capsys.readouterr().err == ""
