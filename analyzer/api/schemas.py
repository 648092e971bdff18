"""Request and response schemas of the HTTP API (v1); pydantic lives only at this edge."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analyzer.api.history import DecisionOut, DeliveryOut, TickOut
from analyzer.configs.durations import Duration
from analyzer.model import Canary, Mode, Phase

__all__ = [
    "ActionRequest",
    "CanaryOut",
    "ConfigOut",
    "ErrorOut",
    "RegisterRequest",
    "ValidateOut",
    "VerdictOut",
    "parse_request",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,199}$"
_LABEL = r"^[A-Za-z_][A-Za-z0-9_]*$"


_WEEK_S = 7 * 86400.0
_VALUE = Annotated[str, Field(max_length=1024)]
_KEY = Annotated[str, Field(min_length=1, max_length=100)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=_In)


def parse_request(model: type[_M], body: Any) -> _M:
    """A request from its decoded JSON body, strictly: JSON's own types only (no ``"50"`` for a
    number, no ``1`` for a boolean), as pydantic's strict mode reads JSON."""
    return model.model_validate_json(json.dumps(body), strict=True)


class SideIn(_In):
    """One deployment: label matchers (and exposition endpoints for the scrape source)."""

    labels: dict[str, str] = Field(min_length=1, max_length=20)
    targets: list[str] = Field(default=[], max_length=32)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, value in labels.items():
            if not _valid_label(name):
                msg = f"invalid label name {name!r}: use [A-Za-z_][A-Za-z0-9_]*, not starting __"
                raise ValueError(msg)
            if len(value) > 1024 or "\x00" in value:
                msg = f"label {name!r}: value longer than 1024 characters or containing NUL"
                raise ValueError(msg)
        return labels

    @field_validator("targets")
    @classmethod
    def _targets(cls, targets: list[str]) -> list[str]:
        for target in targets:
            if not target.startswith(("http://", "https://")) or len(target) > 2048:
                msg = f"target {target[:80]!r} is not an http(s) URL"
                raise ValueError(msg)
        return targets


def _valid_label(name: str) -> bool:
    import re  # noqa: PLC0415 — local: only the validator needs it

    return bool(re.match(_LABEL, name)) and not name.startswith("__")


class StageIn(_In):
    """A traffic stage: the canary's weight in percent and the stage's minimum time."""

    weight: float = Field(gt=0, le=100)
    duration: Duration = Field(le=_WEEK_S, description="at most 7d")
    min_duration: Duration = Field(
        default=0.0,
        le=_WEEK_S,
        description="earliest end of the stage once sequential metrics prove it",
    )

    @model_validator(mode="after")
    def _min_within(self) -> Self:
        if self.min_duration > self.duration:
            msg = f"min_duration ({self.min_duration:g}s) exceeds duration ({self.duration:g}s)"
            raise ValueError(msg)
        return self


class WebhookIn(_In):
    """Where decisions are delivered."""

    url: str = Field(min_length=8, max_length=2048)


class RegisterRequest(_In):
    """``POST /api/v1/canaries``: register a canary."""

    name: str = Field(pattern=_NAME)
    service: str = Field(pattern=_NAME)
    config: str | None = Field(default=None, min_length=1, max_length=200)
    config_inline: dict[str, Any] | None = None
    baseline: SideIn
    canary: SideIn
    stages: list[StageIn] = Field(min_length=1, max_length=20)
    webhook: WebhookIn | None = None
    mode: Mode = Mode.LIVE
    metadata: dict[_KEY, str | int | float | bool | None] = Field(
        default={}, max_length=50, description="at most CANARYD_MAX_METADATA_BYTES as JSON"
    )
    variables: dict[_KEY, _VALUE] = Field(default={}, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.config is None) == (self.config_inline is None):
            msg = "config: give exactly one of config (a stored config's name) or config_inline"
            raise ValueError(msg)
        weights = [s.weight for s in self.stages]
        if weights != sorted(weights):
            msg = f"stages: weights must not decrease, got {weights}"
            raise ValueError(msg)
        if self.mode is Mode.LIVE and self.webhook is None:
            msg = "webhook: required for a live canary (use mode: dry-run to judge without one)"
            raise ValueError(msg)
        for key, value in self.metadata.items():
            if isinstance(value, float) and not math.isfinite(value):
                msg = f"metadata.{key}: must be a finite number"
                raise ValueError(msg)
        return self


class ActionRequest(_In):
    """Body of abort / promote / pause / resume (optional)."""

    reason: str = Field(default="", max_length=1000)


class ErrorOut(BaseModel):
    """Every error response."""

    error: str
    field: str | None = None
    detail: list[str] = []


class CanaryOut(BaseModel):
    """A canary's state, and with ``?detail`` its ticks, decisions and deliveries."""

    id: str
    name: str
    service: str
    phase: Phase
    mode: Mode
    stage: int
    weight: float
    stages: list[dict[str, float]]
    config: str
    config_hash: str
    score: float | None
    reason: str
    created_at: float
    updated_at: float
    stage_started_at: float
    analysis_started_at: float | None
    decision_seq: int
    tick_seq: int
    metadata: dict[str, Any] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # absent from list items
        description="one canary's answers only, not the list's items",
    )
    ticks: list[TickOut] | None = None
    ticks_next: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="with ticks: where the older ticks are read when ticks holds only the newest",
    )
    decisions: list[DecisionOut] | None = None
    deliveries: list[DeliveryOut] | None = None
    warnings: list[str] = Field(
        default=[],
        exclude_if=lambda value: not value,  # absent when empty: earlier answers unchanged
        description="registration's answer only: what makes the config's judging doubtful for "
        "this canary, each naming its metric (e.g. a query range longer than the step, so "
        "the samples overlap); the canary is registered all the same",
    )

    @classmethod
    def of(cls, c: Canary, *, metadata: bool = True) -> CanaryOut:
        """From the domain canary (without history; without metadata for a list's items)."""
        return cls(
            id=c.id,
            name=c.name,
            service=c.service,
            phase=c.phase,
            mode=c.mode,
            stage=c.stage_index,
            weight=_weight(c),
            stages=[{"weight": s.weight, "duration_s": s.duration_s} for s in c.stages],
            config=c.config_name,
            config_hash=c.config_hash,
            score=c.last_score,
            reason=c.last_reason,
            created_at=c.created_at,
            updated_at=c.updated_at,
            stage_started_at=c.stage_started_at,
            analysis_started_at=c.analysis_started_at,
            decision_seq=c.decision_seq,
            tick_seq=c.tick_seq,
            metadata=c.metadata if metadata else None,
        )


def _weight(canary: Canary) -> float:
    """The canary's traffic weight now: 100 once promoted, 0 once rolled back."""
    match canary.phase:
        case Phase.PROMOTED:
            return 100.0
        case Phase.ROLLED_BACK:
            return 0.0
        case _:
            return canary.stage.weight


class VerdictOut(BaseModel):
    """``GET /api/v1/canaries/{id}/verdict``."""

    verdict: Literal["pass", "fail", "running", "inconclusive", "none"]
    score: float | None
    phase: Phase
    reason: str


class ConfigOut(BaseModel):
    """A stored judge config version."""

    name: str
    hash: str
    created_at: float
    body: dict[str, Any]


class ValidateOut(BaseModel):
    """``POST /api/v1/configs/validate``."""

    valid: bool
    hash: str | None = None
    errors: list[str] = []
    warnings: list[str] = Field(
        default=[],
        exclude_if=lambda value: not value,  # absent when empty: earlier answers unchanged
        description="a valid config's doubtful points, each naming its metric "
        "(e.g. a query range longer than the step, so the samples overlap)",
    )
