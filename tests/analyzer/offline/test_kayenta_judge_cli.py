"""Kayenta's classifier and scorer suites end to end through ``canaryd judge``.

Each case becomes the body Kayenta posts to a remote judge (``canaryConfig`` with the metric's
``analysisConfigurations.canary`` options, ``classifier.groupWeights``,
``judge.judgeConfigurations``, ``metricSetPairList``, ``scoreThresholds``), written to a temporary
file and judged by ``analyzer.cli.main`` in-process; the CanaryJudgeResult-shaped JSON on stdout
is compared with what the suite asserts. Case ids are pytest ids; assertion messages carry the
case's ``source``. The cases are those of ``tests/support/kayenta_vectors.py``; the differences
from Kayenta are documented in ``tests/judges/test_kayenta_suites.py`` and, where they show
here, in the test's docstring.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from analyzer import cli
from support import kayenta_vectors as kv

GROUP = "suite"
THRESHOLDS = {"pass": 75.0, "marginal": 50.0}
CONSTANT_REASON = "both sides constant: every pairwise difference is equal"
_EFFECT_FIELDS = {
    "allowedIncrease": "allowed_increase",
    "allowedDecrease": "allowed_decrease",
    "criticalIncrease": "critical_increase",
    "criticalDecrease": "critical_decrease",
}


def _params(cases: Sequence[Any]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def _metric(name: str, groups: list[str], **canary: Any) -> dict[str, Any]:
    return {"name": name, "groups": groups, "analysisConfigurations": {"canary": canary}}


def _pair(name: str, experiment: Sequence[float], control: Sequence[float]) -> dict[str, Any]:
    values = {"control": list(control), "experiment": list(experiment)}
    return {"name": name, "id": f"{name}-pair", "values": values}


def _request(
    metrics: list[dict[str, Any]],
    pairs: list[dict[str, Any]],
    *,
    tolerance: float,
    confidence: float,
    weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    judge = {"tolerance": tolerance, "confLevel": confidence}
    return {
        "canaryConfig": {
            "name": "kayenta-suites",
            "metrics": metrics,
            "classifier": {"groupWeights": weights or {}},
            "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": judge},
        },
        "metricSetPairList": pairs,
        "scoreThresholds": THRESHOLDS,
    }


def _classifier_request(case: Any) -> dict[str, Any]:
    effect: dict[str, Any] = {"measure": case.effect_measure}
    for field, attr in _EFFECT_FIELDS.items():
        if getattr(case, attr) is not None:
            effect[field] = getattr(case, attr)
    metric = _metric(
        case.id,
        [GROUP],
        direction=case.direction,
        nanStrategy=case.nan_strategy,
        critical=case.critical,
        mustHaveData=case.must_have_data,
        effectSize=effect,
        outliers={"strategy": "keep"},
    )
    pair = _pair(case.id, case.experiment, case.control)
    return _request([metric], [pair], tolerance=case.tolerance, confidence=case.confidence)


class _Judge:
    """Runs ``canaryd judge FILE`` in-process and returns the exit code and stdout/stderr."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self._dir = tmp_path
        self._capsys = capsys
        self._runs = 0

    def raw(self, body: dict[str, Any]) -> tuple[int, str, str]:
        self._runs += 1
        path = self._dir / f"request-{self._runs}.json"
        path.write_text(json.dumps(body, allow_nan=False), encoding="utf-8")
        code = cli.main(["judge", str(path)])
        captured = self._capsys.readouterr()
        return code, captured.out, captured.err

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        code, out, err = self.raw(body)
        assert code == cli.EXIT_OK, err
        result: dict[str, Any] = json.loads(out)
        return result


@pytest.fixture
def judge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> _Judge:
    """``canaryd judge`` on a request body, run in this process."""
    return _Judge(tmp_path, capsys)


def _only_result(body: dict[str, Any]) -> dict[str, Any]:
    (result,) = body["results"]
    assert isinstance(result, dict)
    return result


# --- MannWhitneySuite -------------------------------------------------------------------------


class TestMannWhitneySuiteCli:
    """kayenta-mannwhitney ``MannWhitneySuite.scala``: the interval reported by the CLI."""

    def test_readme_example(self, judge: _Judge) -> None:
        """[10,20,30,40] vs [1,2,3,4] at 0.95 reports the interval [6, 39] and estimate 22.5."""
        source = kv.MANN_WHITNEY_SUITE + "::Mann-Whitney Confidence Interval & Estimate"
        metric = _metric("latency", [GROUP], direction="either")
        pair = _pair("latency", [10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0])
        body = judge(_request([metric], [pair], tolerance=0.25, confidence=0.95))
        meta = _only_result(body)["resultMetadata"]
        assert (meta["lowerConfidence"], meta["upperConfidence"]) == (6.0, 39.0), source
        assert meta["estimate"] == 22.5, source


# --- ClassifierSuite --------------------------------------------------------------------------

_MW_CLASSIFIER = [c for c in kv.CLASSIFIER_CASES if c.classifier == "mannWhitney"]
_ZERO_INFLATED_HIGH = "mw_high_large_zero_inflated"
_REGULAR = [c for c in _MW_CLASSIFIER if c.deterministic and c.id != _ZERO_INFLATED_HIGH]
_NOISY = [c for c in _MW_CLASSIFIER if not c.deterministic]


class TestClassifierSuiteCli:
    """kayenta-judge ``ClassifierSuite.scala`` through ``canaryd judge``."""

    @pytest.mark.parametrize("case", _params(_REGULAR))
    def test_classification(self, judge: _Judge, case: Any) -> None:
        """Each case's metric gets Kayenta's classification, critical flag and deviation."""
        result = _only_result(judge(_classifier_request(case)))
        if case.expected_classification is not None:
            assert result["classification"] == case.expected_classification, case.source
        if case.expected_critical is not None:
            assert result["critical"] is case.expected_critical, case.source
        if case.expected_deviation is not None:
            ratio = result["resultMetadata"]["ratio"]
            nan = math.isnan(case.expected_deviation)
            assert ratio == (None if nan else case.expected_deviation), case.source
        if case.expected_reason_nonempty:
            assert result["classificationReason"], case.source
        assert result["name"] == case.id, case.source

    @pytest.mark.parametrize("case", _params(_NOISY))
    def test_constant_samples(self, judge: _Judge, case: Any) -> None:
        """Constant samples get Kayenta's classification with the same bytes on every run.

        Difference (1): Kayenta jitters constant samples with Gaussian noise; canaryd judges the
        single pairwise difference c (interval [c, c]) and answers identically each time.
        """
        body = _classifier_request(case)
        first_code, first, _ = judge.raw(body)
        second_code, second, _ = judge.raw(body)
        assert first_code == second_code == cli.EXIT_OK, case.source
        assert first == second, case.source
        result = _only_result(json.loads(first))
        c = case.experiment[0] - case.control[0]
        meta = result["resultMetadata"]
        assert result["classification"] == case.expected_classification, case.source
        assert (meta["lowerConfidence"], meta["estimate"], meta["upperConfidence"]) == (c, c, c)
        assert result["classificationReason"], case.source

    def test_zero_inflated_high(self, judge: _Judge) -> None:
        """Zero-inflated error rates that are 4.4× higher are classified High.

        See ``TestClassifierSuite.test_zero_inflated_high`` in
        ``tests/judges/test_kayenta_suites.py``: the interval is [0, 0] and the band test
        W(0) > z decides High.
        """
        case = next(c for c in _MW_CLASSIFIER if c.id == _ZERO_INFLATED_HIGH)
        result = _only_result(judge(_classifier_request(case)))
        assert result["classification"] == "High", case.source
        assert result["critical"] is False, case.source


# --- ScorerSuite ------------------------------------------------------------------------------

# Samples whose classification is known (ClassifierSuite "Critical Effect Size" data at
# tolerance 0.10 and confidence 0.95); identical samples pass, an empty canary has no data.
_SMALL_HIGH = ([20.0, 22.0, 21.0, 25.0, 30.0], [1.0, 2.2, 1.1, 2.5, 3.0])
_LABEL_DATA: dict[str, tuple[list[float], list[float]]] = {
    "Pass": ([1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0]),
    "High": _SMALL_HIGH,
    "Low": (_SMALL_HIGH[1], _SMALL_HIGH[0]),
    "Nodata": ([], [1.0, 2.0, 3.0, 4.0, 5.0]),
}


def _scorer_request(case: Any) -> dict[str, Any]:
    metrics, pairs = [], []
    for m in case.metrics:
        metrics.append(_metric(m.name, list(m.groups), direction="either", critical=m.critical))
        experiment, control = _LABEL_DATA[m.classification]
        pairs.append(_pair(m.name, experiment, control))
    return _request(
        metrics, pairs, tolerance=0.10, confidence=0.95, weights=dict(case.group_weights)
    )


class TestScorerSuiteCli:
    """kayenta-judge ``ScorerSuite.scala`` end to end: classified metrics scored by the CLI."""

    @pytest.mark.parametrize("case", _params(kv.SCORER_CASES))
    def test_summary_score(self, judge: _Judge, case: Any) -> None:
        """Metrics classified as the case lists them score Kayenta's summary and group scores.

        A result is critical when its metric is configured critical and it fails (High, Low or
        Nodata), as Kayenta's classifier sets CanaryAnalysisResult.critical; a critical Pass is
        not critical, which the "one good (critical)" case relies on.
        """
        body = judge(_scorer_request(case))
        results = {r["name"]: r for r in body["results"]}
        for m in case.metrics:
            assert results[m.name]["classification"] == m.classification, case.source
            failed = m.critical and m.classification != "Pass"
            assert results[m.name]["critical"] is failed, case.source
        score = body["score"]["score"]
        assert score == pytest.approx(case.expected_summary_score, abs=case.summary_abs_tol)
        if case.expected_group_count is not None:
            assert len(body["groupScores"]) == case.expected_group_count, case.source
        if case.expected_group_scores_sorted is not None:
            got = sorted(g["score"] for g in body["groupScores"])
            assert got == case.expected_group_scores_sorted, case.source


# --- Options Kayenta would replace silently ---------------------------------------------------

_UNKNOWN_OPTIONS = [
    pytest.param("direction", {"direction": "up"}, id="direction"),
    pytest.param("nanStrategy", {"nanStrategy": "zero"}, id="nan-strategy"),
    pytest.param("effectSize.measure", {"effectSize": {"measure": "cohenD"}}, id="effect-measure"),
    pytest.param("outliers.strategy", {"outliers": {"strategy": "ksigma"}}, id="outlier-strategy"),
]


class TestUnknownOptionsCli:
    """Difference (5): an option Kayenta would silently replace by its default is an error."""

    @pytest.mark.parametrize(("field", "canary"), _UNKNOWN_OPTIONS)
    def test_rejected(self, judge: _Judge, field: str, canary: dict[str, Any]) -> None:
        """An unknown value exits 2 and names the field; no suite case relies on a fallback."""
        metric = _metric("latency", [GROUP], **canary)
        pair = _pair("latency", [10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0])
        code, out, err = judge.raw(_request([metric], [pair], tolerance=0.25, confidence=0.95))
        assert code == cli.EXIT_BAD_INPUT
        assert out == ""
        assert f"canaryConfig.metrics.0.analysisConfigurations.canary.{field}" in err
