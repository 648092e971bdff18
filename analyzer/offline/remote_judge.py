"""Kayenta's remote-judge body in, a CanaryJudgeResult-shaped answer out.

The request is what Kayenta sends to a judge: ``canaryConfig`` (metrics with their
``analysisConfigurations.canary`` options, ``classifier.groupWeights``,
``judge.judgeConfigurations``), ``metricSetPairList`` and ``scoreThresholds``. Kayenta's own
field names are kept. Fields Kayenta sends that do not change a judgement (timestamps, queries,
scopes, attributes) are accepted and ignored; anything else is an error naming the field — as are
unknown directions, NaN strategies and effect measures, where Kayenta would silently fall back.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError, model_validator

from analyzer.configs.judgeconfig import validation_message
from analyzer.errors import InvalidInput
from judges.classifier import MannWhitneyOptions, classify
from judges.judgement import MetricJudgement
from judges.labels import Direction, EffectMeasure, NanStrategy, OutlierStrategy
from judges.preprocessing import Stats
from judges.scorer import ScoredMetric, ScoreResult, score_groups

__all__ = ["JudgeRequest", "judge_request", "render_result"]

DEFAULT_JUDGE_NAME = "NetflixACAJudge-v1.0"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _KayentaEffectSize(_Strict):
    measure: EffectMeasure = EffectMeasure.MEAN_RATIO
    allowedIncrease: float | None = Field(default=None, gt=0)
    allowedDecrease: float | None = Field(default=None, gt=0)
    criticalIncrease: float | None = Field(default=None, gt=0)
    criticalDecrease: float | None = Field(default=None, gt=0)


class _KayentaOutliers(_Strict):
    strategy: OutlierStrategy = OutlierStrategy.KEEP
    outlierFactor: float = Field(default=3.0, gt=0)


class _CanaryAnalysis(_Strict):
    direction: Direction = Direction.EITHER
    nanStrategy: NanStrategy = NanStrategy.REMOVE
    critical: bool = False
    mustHaveData: bool = False
    muted: bool = False
    effectSize: _KayentaEffectSize = _KayentaEffectSize()
    outliers: _KayentaOutliers = _KayentaOutliers()


class _AnalysisConfigurations(_Strict):
    canary: _CanaryAnalysis = _CanaryAnalysis()


class _MetricConfig(_Strict):
    name: str = Field(min_length=1)
    groups: list[str] = []
    analysisConfigurations: _AnalysisConfigurations = _AnalysisConfigurations()
    query: dict[str, Any] | None = None
    scopeName: str | None = None


class _Classifier(_Strict):
    groupWeights: dict[str, float] = {}
    scoreThresholds: dict[str, float] | None = None


class _JudgeConfigurations(_Strict):
    tolerance: float = Field(default=0.25, ge=0)
    confLevel: float = Field(default=0.98, gt=0, lt=1)


class _Judge(_Strict):
    name: str = DEFAULT_JUDGE_NAME
    judgeConfigurations: _JudgeConfigurations = _JudgeConfigurations()


class _CanaryConfig(_Strict):
    metrics: list[_MetricConfig] = Field(min_length=1)
    classifier: _Classifier = _Classifier()
    judge: _Judge = _Judge()
    name: str | None = None
    id: str | None = None
    description: str | None = None
    configVersion: str | None = None
    applications: list[str] | None = None
    templates: dict[str, Any] | None = None
    createdTimestamp: int | None = None
    updatedTimestamp: int | None = None
    createdTimestampIso: str | None = None
    updatedTimestampIso: str | None = None


class _Values(_Strict):
    # Strict: a string or a boolean among the values is a malformed request, not a number.
    control: list[StrictFloat | None]
    experiment: list[StrictFloat | None]


class _MetricSetPair(_Strict):
    name: str = Field(min_length=1)
    id: str | None = None
    tags: dict[str, str] = {}
    values: _Values
    attributes: dict[str, Any] | None = None
    scopes: dict[str, Any] | None = None


class _ScoreThresholds(_Strict):
    pass_: float = Field(alias="pass")
    marginal: float


class JudgeRequest(_Strict):
    """The body Kayenta posts to a remote judge."""

    canaryConfig: _CanaryConfig
    metricSetPairList: list[_MetricSetPair]
    scoreThresholds: _ScoreThresholds
    kind: Literal["canaryJudgeRequest"] | None = None

    @model_validator(mode="after")
    def _pairs_have_configs(self) -> JudgeRequest:
        names = {m.name for m in self.canaryConfig.metrics}
        for i, pair in enumerate(self.metricSetPairList):
            if pair.name not in names:
                msg = f"metricSetPairList.{i}.name: no metric {pair.name!r} in canaryConfig.metrics"
                raise ValueError(msg)
        return self


def parse_request(data: Any) -> JudgeRequest:
    """Validate a decoded request; :class:`InvalidInput` names the bad field."""
    try:
        return JudgeRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("request", validation_message(exc)) from None


def _options(metric: _MetricConfig, judge: _JudgeConfigurations) -> MannWhitneyOptions:
    canary = metric.analysisConfigurations.canary
    effect = canary.effectSize
    return MannWhitneyOptions(
        direction=canary.direction,
        tolerance=judge.tolerance,
        confidence=judge.confLevel,
        effect_measure=effect.measure,
        allowed_increase=effect.allowedIncrease,
        allowed_decrease=effect.allowedDecrease,
        critical_increase=effect.criticalIncrease,
        critical_decrease=effect.criticalDecrease,
        critical=canary.critical,
        must_have_data=canary.mustHaveData,
        muted=canary.muted,
        nan_strategy=canary.nanStrategy,
        outliers=canary.outliers.strategy,
        outlier_factor=canary.outliers.outlierFactor,
    )


def _values(raw: list[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in raw]


def judge_request(request: JudgeRequest) -> dict[str, Any]:
    """Judge every metric pair, score them, and build the CanaryJudgeResult-shaped answer."""
    config = request.canaryConfig
    metrics = {m.name: m for m in config.metrics}
    judged: list[tuple[_MetricSetPair, _MetricConfig, MetricJudgement]] = []
    for pair in request.metricSetPairList:
        metric = metrics[pair.name]
        options = _options(metric, config.judge.judgeConfigurations)
        result = classify(_values(pair.values.experiment), _values(pair.values.control), options)
        judged.append((pair, metric, result))
    scored = [
        ScoredMetric(
            name=pair.name,
            label=result.label,
            groups=tuple(metric.groups),
            critical=result.critical,
            muted=result.muted,
            reason=result.reason,
        )
        for pair, metric, result in judged
    ]
    thresholds = request.scoreThresholds
    score = score_groups(
        scored,
        config.classifier.groupWeights,
        pass_threshold=thresholds.pass_,
        marginal_threshold=thresholds.marginal,
    )
    return _result_body(config.judge.name, score, judged)


def _stats(stats: Stats) -> dict[str, Any]:
    return {
        "count": stats.count,
        "mean": _num(stats.mean),
        "std": _num(stats.std),
        "min": _num(stats.min),
        "max": _num(stats.max),
    }


def _num(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def _result_body(
    judge_name: str,
    score: ScoreResult,
    judged: list[tuple[_MetricSetPair, _MetricConfig, MetricJudgement]],
) -> dict[str, Any]:
    results = []
    for pair, metric, res in judged:
        test = res.test
        meta: dict[str, Any] = {"ratio": _num(res.ratio)}
        if test is not None:
            meta |= {
                "lowerConfidence": _num(test.lower),
                "upperConfidence": _num(test.upper),
                "estimate": _num(test.estimate),
                "pValue": _num(test.p_value),
            }
        results.append(
            {
                "name": pair.name,
                "id": pair.id,
                "tags": pair.tags,
                "classification": str(res.label),
                "classificationReason": res.reason,
                "groups": metric.groups,
                "critical": res.critical,
                "muted": res.muted,
                "controlMetadata": {"stats": _stats(res.control)},
                "experimentMetadata": {"stats": _stats(res.experiment)},
                "resultMetadata": meta,
            }
        )
    groups = [
        {"name": g.name, "score": g.score, "classification": "", "classificationReason": ""}
        for g in score.groups
    ]
    return {
        "judgeName": judge_name,
        "score": {
            "score": score.score,
            "classification": str(score.classification),
            "classificationReason": score.reason,
        },
        "groupScores": groups,
        "results": results,
    }


def render_result(body: dict[str, Any]) -> str:
    """Deterministic JSON text of a result: the same input gives the same bytes."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=2) + "\n"
