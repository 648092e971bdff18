"""The judge config (v1): which metrics, how each is judged, the kill-switch — DESIGN.md §3.

Loaded from YAML or JSON at the edge with pydantic and ``extra="forbid"``: a misspelt key is an
error naming it (Kayenta silently ignored ``lookBackMins``, kayenta#538). Inside the service the
validated model is used as is; its JSON Schema is ``config/judge-config.schema.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator

from analyzer.configs.durations import Duration
from analyzer.errors import InvalidInput
from analyzer.metricdata import MetricKind
from analyzer.model import InconclusivePolicy, JudgeName, NoDataPolicy
from judges.labels import Direction, EffectMeasure, NanStrategy, OutlierStrategy
from judges.mannwhitney.dependence import Dependence

__all__ = [
    "BUILTIN_VARIABLES",
    "JudgeConfig",
    "MetricConfig",
    "config_hash",
    "load_config",
    "parse_config",
    "validation_message",
]

BUILTIN_VARIABLES = frozenset({"selector", "step", "window"})

_NAME = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$"
_WEEK_S = 7 * 86400.0


def _inline(enum: type[StrEnum], title: str) -> WithJsonSchema:
    """The schema a ``Literal`` of the values had: kept inline, so the committed one holds."""
    return WithJsonSchema({"enum": [m.value for m in enum], "title": title, "type": "string"})


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class CountQuery(_Model):
    """The two PromQL templates of a ``count`` metric."""

    events: str = Field(min_length=1)
    exposure: str = Field(min_length=1)


class EffectSize(_Model):
    """Effect-size gates of the Mann-Whitney judge (Kayenta's ``effectSize``)."""

    measure: EffectMeasure = EffectMeasure.MEAN_RATIO
    allowed_increase: float | None = Field(default=None, gt=0)
    allowed_decrease: float | None = Field(default=None, gt=0)
    critical_increase: float | None = Field(default=None, gt=0)
    critical_decrease: float | None = Field(default=None, gt=0)


class Outliers(_Model):
    """IQR outlier removal before judging; off unless ``strategy: remove``."""

    strategy: OutlierStrategy = OutlierStrategy.KEEP
    factor: float = Field(default=3.0, gt=0)


class ThresholdLimits(_Model):
    """Hard lines of the ``threshold`` judge (and of kill-switch rules)."""

    min: float | None = None
    max: float | None = None
    max_increase: float | None = None
    max_ratio: float | None = Field(default=None, gt=0)
    min_points: int = Field(default=1, ge=1)
    min_exposure: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if all(v is None for v in (self.min, self.max, self.max_increase, self.max_ratio)):
            msg = "set at least one of min, max, max_increase, max_ratio"
            raise ValueError(msg)
        return self


class MetricConfig(_Model):
    """One metric: its query, its kind, and how it is judged."""

    name: str = Field(pattern=_NAME)
    group: str = Field(default="default", min_length=1, max_length=100)
    kind: Annotated[MetricKind, _inline(MetricKind, "Kind")]
    judge: Annotated[JudgeName, _inline(JudgeName, "Judge")]
    direction: Direction = Direction.INCREASE
    critical: bool = False
    must_have_data: bool = False
    muted: bool = False
    tolerance: float | None = Field(
        default=None,
        gt=0,
        description="sequential judges: canary/baseline ratio (count) or difference (mean) "
        "accepted for early promotion",
    )
    effect_size: EffectSize = EffectSize()
    nan_strategy: NanStrategy = NanStrategy.REMOVE
    outliers: Outliers = Outliers()
    dependence: Dependence = Field(
        default=Dependence.NONE,
        exclude_if=lambda value: value is Dependence.NONE,  # absent: the hash stays as it was
        description="mann-whitney: 'adjust' widens the test for serially dependent samples "
        "(an effective sample size from the lag-1 autocorrelation); 'none' is Kayenta's test",
    )
    threshold: ThresholdLimits | None = None
    query: str | CountQuery

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind is MetricKind.COUNT and not isinstance(self.query, CountQuery):
            msg = "a count metric needs query: {events: ..., exposure: ...}"
            raise ValueError(msg)
        if self.kind is MetricKind.SERIES and not isinstance(self.query, str):
            msg = "a series metric needs a single query string"
            raise ValueError(msg)
        if self.judge is JudgeName.THRESHOLD and self.threshold is None:
            msg = "the threshold judge needs threshold: {max: ..., ...}"
            raise ValueError(msg)
        if self.judge is JudgeName.SEQUENTIAL_COUNT and self.kind is not MetricKind.COUNT:
            msg = "sequential-count judges count metrics only"
            raise ValueError(msg)
        if self.judge is JudgeName.SEQUENTIAL_MEAN and self.kind is not MetricKind.SERIES:
            msg = "sequential-mean judges series metrics only"
            raise ValueError(msg)
        if self.judge is JudgeName.SEQUENTIAL_MEAN and self.tolerance is None:
            msg = "tolerance: sequential-mean needs the allowed change in the metric's units"
            raise ValueError(msg)
        if self.dependence is not Dependence.NONE and self.judge is not JudgeName.MANN_WHITNEY:
            msg = f"dependence: only the mann-whitney judge adjusts for it, not {self.judge}"
            raise ValueError(msg)
        ratio = self.tolerance
        if self.judge is JudgeName.SEQUENTIAL_COUNT and ratio is not None and ratio <= 1:
            msg = "tolerance: a rate ratio above 1 (e.g. 1.2) accepted for early promotion"
            raise ValueError(msg)
        return self

    def templates(self) -> dict[str, str]:
        """The query templates by role (``query``, or ``events`` and ``exposure``)."""
        if isinstance(self.query, CountQuery):
            return {"events": self.query.events, "exposure": self.query.exposure}
        return {"query": self.query}


class KillRule(ThresholdLimits):
    """A kill-switch rule: a hard line on one metric, checked on every poll."""

    metric: str = Field(pattern=_NAME)
    window: Duration | None = Field(
        default=None,
        gt=0,
        description="trailing window the rule looks at (default: analysis_interval)",
    )


class ScoreThresholds(_Model):
    """Summary-score thresholds: Pass at ≥ pass, Marginal at ≥ marginal, else Fail."""

    pass_: float = Field(alias="pass", ge=0, le=100)
    marginal: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.marginal > self.pass_:
            msg = f"marginal ({self.marginal:g}) must not exceed pass ({self.pass_:g})"
            raise ValueError(msg)
        return self


class MannWhitneySettings(_Model):
    """Config-wide settings of the Mann-Whitney judge (Kayenta's judgeConfigurations)."""

    tolerance: float = Field(default=0.25, ge=0)
    confidence: float = Field(default=0.98, gt=0, lt=1)


class JudgeConfig(_Model):
    """A whole judge config (v1)."""

    name: str = Field(pattern=_NAME)
    description: str = ""
    # at most an hour (a step of 1e300 s would never tick again)
    step: Duration = Field(
        ge=1, le=3600, description="poll cadence and query resolution, at least 1s"
    )
    analysis_interval: Duration = Field(gt=0, le=_WEEK_S)
    lookback: Duration | None = None
    warmup: Duration = Field(default=0.0, le=_WEEK_S)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    score_thresholds: ScoreThresholds = ScoreThresholds.model_validate({"pass": 75, "marginal": 50})
    on_no_data: Annotated[NoDataPolicy, _inline(NoDataPolicy, "On No Data")] = NoDataPolicy.HOLD
    on_inconclusive: Annotated[
        InconclusivePolicy, _inline(InconclusivePolicy, "On Inconclusive")
    ] = InconclusivePolicy.PAUSE
    groups: dict[str, Annotated[float, Field(ge=0, le=100)]] = {}
    variables: dict[str, str] = {}
    mann_whitney: MannWhitneySettings = MannWhitneySettings()
    metrics: list[MetricConfig] = Field(min_length=1)
    kill_switch: list[KillRule] = []

    @model_validator(mode="after")
    def _references(self) -> Self:
        total = sum(self.groups.values())
        if total > 100:
            msg = f"groups: weights add up to {total:g}, more than 100"
            raise ValueError(msg)
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            msg = f"metrics: duplicate names {dupes}"
            raise ValueError(msg)
        if self.lookback is not None and self.lookback > _WEEK_S:
            msg = f"lookback: at most 7d, got {self.lookback:g}s"
            raise ValueError(msg)
        if self.analysis_interval < self.step:
            msg = "analysis_interval must be at least one step"
            raise ValueError(msg)
        for i, rule in enumerate(self.kill_switch):
            if rule.metric not in names:
                msg = f"kill_switch.{i}.metric: unknown metric {rule.metric!r} (known: {names})"
                raise ValueError(msg)
        unknown = sorted(set(self.groups) - {m.group for m in self.metrics})
        if unknown:
            msg = f"groups: no metric belongs to {unknown}"
            raise ValueError(msg)
        self._check_templates()
        return self

    def _check_templates(self) -> None:
        known = BUILTIN_VARIABLES | set(self.variables)
        for i, metric in enumerate(self.metrics):
            for role, template in metric.templates().items():
                where = f"metrics.{i}.query" + ("" if role == "query" else f".{role}")
                for name in template_variables(template, where):
                    if name not in known:
                        builtin, declared = sorted(BUILTIN_VARIABLES), sorted(self.variables)
                        msg = (
                            f"{where}: unknown variable ${{{name}}} "
                            f"(built in: {builtin}; declared: {declared})"
                        )
                        raise ValueError(msg)

    def metric(self, name: str) -> MetricConfig:
        """The metric called ``name``; :class:`InvalidInput` on ``metrics`` if there is none."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        known = [m.name for m in self.metrics]
        raise InvalidInput("metrics", f"no metric {name!r} (known: {known})")


def template_variables(template: str, where: str = "query") -> list[str]:
    """Names of the ``${...}`` variables a template uses; malformed placeholders are errors."""
    names: list[str] = []
    for match in string.Template.pattern.finditer(template):
        if match.group("invalid") is not None:
            offset = match.start()
            msg = f"{where}: malformed placeholder at offset {offset} (use ${{name}}, or $$ for $)"
            raise ValueError(msg)
        name = match.group("named") or match.group("braced")
        if name:
            names.append(name)
    return names


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each starting with the dotted path of the bad field."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        loc = re.sub(r"\.(str|CountQuery|float|int|list\[.*?\]|dict\[.*?\])(?=\.|$)", "", loc)
        path = ".".join(p for p in (prefix, loc) if p)
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return "\n".join(lines)


def parse_config(data: Any, *, source: str = "config", strict: bool = False) -> JudgeConfig:
    """Validate a decoded config; :class:`InvalidInput` names the bad field. ``strict`` (the
    API's bodies) takes every value as JSON types it: no ``"0.05"`` for a number, no ``1`` for
    a boolean; files and stored versions are read as before."""
    try:
        if strict:
            return JudgeConfig.model_validate_json(json.dumps(data), strict=True)
        return JudgeConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(source, validation_message(exc)) from None


def load_config(path: Path) -> JudgeConfig:
    """Read and validate a YAML or JSON judge config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(str(path), f"cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        language = path.suffix.lstrip(".") or "YAML"
        raise InvalidInput(str(path), f"not valid {language}: {exc}") from None
    return parse_config(data, source=str(path))


def config_hash(config: JudgeConfig) -> str:
    """Content hash of a config (sha256 of its canonical JSON): the config's version."""
    canonical = json.dumps(config.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
