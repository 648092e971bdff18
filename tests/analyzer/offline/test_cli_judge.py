"""`canaryd judge`: a Kayenta remote-judge request in, a CanaryJudgeResult-shaped answer out."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analyzer.cli import main

CANARYD = Path(sys.executable).parent / "canaryd"

Mutation = Callable[[dict[str, Any]], None]


def _values(seed: int, loc: float, n: int) -> list[float]:
    return [round(float(v), 4) for v in np.random.default_rng(seed).normal(loc, loc / 20, n)]


def _request() -> dict[str, Any]:
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


def _judge(
    request: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run `canaryd judge FILE` in-process; (exit code, stdout, stderr)."""
    path = tmp_path / "request.json"
    path.write_text(request if isinstance(request, str) else json.dumps(request), encoding="utf-8")
    code = main(["judge", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _set(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()
CANARY_0 = "canaryConfig.metrics.0.analysisConfigurations.canary"


class TestJudgeResult:
    """The answer has CanaryJudgeResult's shape and the judges' numbers."""

    def test_fields(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Every CanaryJudgeResult field is present with the expected types."""
        code, out, _ = _judge(_request(), tmp_path, capsys)
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
        body = json.loads(_judge(_request(), tmp_path, capsys)[1])
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
        request = _request()
        request["canaryConfig"]["metrics"][1]["analysisConfigurations"]["canary"]["critical"] = True
        body = json.loads(_judge(request, tmp_path, capsys)[1])
        assert body["score"]["score"] == 0.0
        assert body["score"]["classification"] == "Fail"
        assert body["score"]["classificationReason"].startswith("critical metric latency failed")
        assert body["results"][1]["critical"] is True

    def test_nodata_stats_are_null(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A side without data reports count 0 and null statistics (valid JSON, no NaN)."""
        request = _request()
        request["metricSetPairList"][0]["values"]["experiment"] = [None, None]
        code, out, _ = _judge(request, tmp_path, capsys)
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
        first = _judge(_request(), tmp_path, capsys)[1]
        second = _judge(_request(), tmp_path, capsys)[1]
        assert first == second
        assert first.endswith("\n")

    def test_console_script_reads_stdin(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The installed `canaryd judge -` reads standard input and prints the same bytes."""
        in_process = _judge(_request(), tmp_path, capsys)[1]
        done = subprocess.run(
            [str(CANARYD), "judge", "-"],
            input=json.dumps(_request()),
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
        monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(_request())))
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
        request = _request()
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
        code, out, err = _judge(request, tmp_path, capsys)
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


class TestInvalidRequests:
    """Malformed requests exit 2 and stderr names the field."""

    @pytest.mark.parametrize(
        ("mutation", "expected"),
        [
            pytest.param(
                _set(f"{CANARY_0}.direction", "up"),
                f"{CANARY_0}.direction: Input should be 'increase', 'decrease' or 'either'",
                id="unknown-direction",
            ),
            pytest.param(
                _set("metricSetPairList.0.values", _DELETE),
                "metricSetPairList.0.values: Field required",
                id="missing-values",
            ),
            pytest.param(
                _set("metricSetPairList.0.values.experiment", _DELETE),
                "metricSetPairList.0.values.experiment: Field required",
                id="missing-experiment",
            ),
            pytest.param(
                _set("metricSetPairList.0.values.control.3", "fast"),
                "metricSetPairList.0.values.control.3: Input should be a valid number",
                id="string-in-values",
            ),
            pytest.param(
                _set("metricSetPairList.0.values.control.3", "1.5"),
                "metricSetPairList.0.values.control.3: Input should be a valid number",
                id="numeric-string-in-values",
            ),
            pytest.param(
                _set("metricSetPairList.1.values.experiment.0", True),
                "metricSetPairList.1.values.experiment.0: Input should be a valid number",
                id="boolean-in-values",
            ),
            pytest.param(
                _set("metricSetPairList.0.values", [1, 2]),
                "metricSetPairList.0.values: Input should be",
                id="values-not-an-object",
            ),
            pytest.param(
                _set(f"{CANARY_0}.lookBackMins", 5),
                f"{CANARY_0}.lookBackMins: Extra inputs are not permitted",
                id="unknown-canary-key",
            ),
            pytest.param(
                _set("metricSetPairList.1.name", "cpu"),
                "metricSetPairList.1.name: no metric 'cpu' in canaryConfig.metrics",
                id="pair-without-metric",
            ),
            pytest.param(
                _set("canaryConfig.judge.judgeConfigurations.confLevel", 1.5),
                "canaryConfig.judge.judgeConfigurations.confLevel: Input should be less than 1",
                id="conf-level-out-of-range",
            ),
            pytest.param(
                _set("scoreThresholds", _DELETE), "scoreThresholds: Field required", id="thresholds"
            ),
        ],
    )
    def test_exit_2_naming_the_field(
        self,
        mutation: Mutation,
        expected: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The message names the dotted path of the bad field; nothing goes to stdout."""
        request = copy.deepcopy(_request())
        mutation(request)
        code, out, err = _judge(request, tmp_path, capsys)
        assert code == 2
        assert out == ""
        assert err.startswith("canaryd judge: invalid input: request: ")
        assert expected in err

    def test_not_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Text that is not JSON exits 2 saying so and naming the file."""
        code, _, err = _judge("{not json", tmp_path, capsys)
        assert code == 2
        assert f"{tmp_path / 'request.json'}: not valid JSON" in err

    def test_not_json_on_stdin(self) -> None:
        """Through the console script, bad standard input exits 2 naming it."""
        done = subprocess.run(
            [str(CANARYD), "judge", "-"],
            input="[1, 2",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert "standard input: not valid JSON" in done.stderr

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing request file exits 2 naming it."""
        missing = tmp_path / "nope.json"
        assert main(["judge", str(missing)]) == 2
        assert f"{missing}: cannot read" in capsys.readouterr().err
