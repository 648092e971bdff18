"""`canaryd judge` on malformed requests: exit 2, and stderr names the bad field or the input."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from support.cli import CANARYD
from support.remote_judge import judge_request, run_judge

Mutation = Callable[[dict[str, Any]], None]


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
        request = copy.deepcopy(judge_request())
        mutation(request)
        code, out, err = run_judge(request, tmp_path, capsys)
        assert code == 2
        assert out == ""
        assert err.startswith("canaryd judge: invalid input: request: ")
        assert expected in err

    def test_not_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Text that is not JSON exits 2 saying so and naming the file."""
        code, _, err = run_judge("{not json", tmp_path, capsys)
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
