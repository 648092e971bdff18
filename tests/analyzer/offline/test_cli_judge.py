"""`canaryd judge`: a Kayenta remote-judge request in, a CanaryJudgeResult-shaped answer out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from support.cli import CANARYD
from support.remote_judge import judge_request, run_judge


class TestJudgeResult:
    """The answer has CanaryJudgeResult's shape and the judges' numbers."""

    def test_fields(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Every CanaryJudgeResult field is present with the expected types."""
        code, out, _ = run_judge(judge_request(), tmp_path, capsys)
        assert code == 0
        body = json.loads(out)
        assert body["judgeName"] == "NetflixACAJudge-v1.0"
        assert set(body["score"]) == {"score", "classification", "classificationReason"}
        assert [g["name"] for g in body["groupScores"]] == ["errors", "latency"]
        for result in body["results"]:
            assert set(result) >= {
                "name",
                "id",
                "tags",
                "classification",
                "classificationReason",
                "groups",
                "critical",
                "muted",
                "controlMetadata",
                "experimentMetadata",
                "resultMetadata",
            }
            for side in ("controlMetadata", "experimentMetadata"):
                assert set(result[side]["stats"]) == {"min", "max", "mean", "std", "count"}
            assert set(result["resultMetadata"]) == {
                "ratio",
                "lowerConfidence",
                "upperConfidence",
                "estimate",
                "pValue",
            }

    def test_classifications_and_score(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Unchanged errors pass, +30 % latency is High: 100·0.6 + 0·0.4 = 60, Marginal."""
        body = json.loads(run_judge(judge_request(), tmp_path, capsys)[1])
        errors, latency = body["results"]
        assert (errors["name"], errors["id"], errors["tags"]) == (
            "errors",
            "pair-1",
            {"instance": "a"},
        )
        assert errors["classification"] == "Pass"
        assert latency["classification"] == "High"
        assert latency["classificationReason"].startswith("canary higher")
        assert latency["experimentMetadata"]["stats"]["count"] == 19  # the null was removed
        meta = latency["resultMetadata"]
        assert meta["lowerConfidence"] <= meta["estimate"] <= meta["upperConfidence"]
        assert 0.0 <= meta["pValue"] < 0.01
        assert body["score"] == {
            "score": 60.0,
            "classification": "Marginal",
            "classificationReason": "",
        }

    def test_critical_failure_zeroes_the_score(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A critical metric that fails forces the score to 0 and says which one."""
        request = judge_request()
        request["canaryConfig"]["metrics"][1]["analysisConfigurations"]["canary"]["critical"] = True
        body = json.loads(run_judge(request, tmp_path, capsys)[1])
        assert body["score"]["score"] == 0.0
        assert body["score"]["classification"] == "Fail"
        assert body["score"]["classificationReason"].startswith("critical metric latency failed")
        assert body["results"][1]["critical"] is True

    def test_nodata_stats_are_null(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A side without data reports count 0 and null statistics (valid JSON, no NaN)."""
        request = judge_request()
        request["metricSetPairList"][0]["values"]["experiment"] = [None, None]
        code, out, _ = run_judge(request, tmp_path, capsys)
        assert code == 0
        result = json.loads(out)["results"][0]
        assert result["classification"] == "Nodata"
        assert result["experimentMetadata"]["stats"] == {
            "count": 0,
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
        }

    def test_output_is_deterministic(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The same request twice gives byte-identical output."""
        first = run_judge(judge_request(), tmp_path, capsys)[1]
        second = run_judge(judge_request(), tmp_path, capsys)[1]
        assert first == second
        assert first.endswith("\n")

    def test_console_script_reads_stdin(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The installed `canaryd judge -` reads standard input and prints the same bytes."""
        in_process = run_judge(judge_request(), tmp_path, capsys)[1]
        done = subprocess.run(
            [str(CANARYD), "judge", "-"],
            input=json.dumps(judge_request()),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == in_process

    def test_stdin_in_process(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`judge -` in-process reads sys.stdin."""
        monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(judge_request())))
        assert main(["judge", "-"]) == 0
        assert json.loads(capsys.readouterr().out)["judgeName"] == "NetflixACAJudge-v1.0"


class TestJudgeConfigurations:
    """judge.judgeConfigurations tolerance and confLevel override the defaults."""

    @staticmethod
    def _shifted(tolerance: float | None = None, conf: float | None = None) -> dict[str, Any]:
        """One metric: baseline 0..19, canary + 3.5 (98 % CI [−1.5, 8.5], 80 % CI [0.5, 6.5]).

        Every pairwise difference is k + 0.5, so neither 0 nor the bands used below (0.35 and
        0.875) is one of them: the decisions do not sit on an edge.
        """
        request = judge_request()
        config = request["canaryConfig"]
        config["metrics"] = config["metrics"][1:]
        config["classifier"]["groupWeights"] = {}
        judge: dict[str, float] = {}
        if tolerance is not None:
            judge["tolerance"] = tolerance
        if conf is not None:
            judge["confLevel"] = conf
        config["judge"]["judgeConfigurations"] = judge
        base = [float(v) for v in range(20)]
        request["metricSetPairList"] = [
            {"name": "latency", "values": {"control": base, "experiment": [v + 3.5 for v in base]}}
        ]
        return request

    def _label(
        self, request: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> str:
        code, out, err = run_judge(request, tmp_path, capsys)
        assert code == 0, err
        label: str = json.loads(out)["results"][0]["classification"]
        return label

    def test_conf_level_flips(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """At the default 0.98 the interval holds 0 (Pass); at confLevel 0.8 it does not (High)."""
        assert self._label(self._shifted(tolerance=0.0), tmp_path, capsys) == "Pass"
        assert self._label(self._shifted(tolerance=0.0, conf=0.8), tmp_path, capsys) == "High"

    def test_tolerance_flips(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """At 80 %, lower 0.5 > 0.1·3.5 is High; under the default 0.25·3.5 = 0.875 it passes."""
        assert self._label(self._shifted(tolerance=0.1, conf=0.8), tmp_path, capsys) == "High"
        assert self._label(self._shifted(conf=0.8), tmp_path, capsys) == "Pass"
