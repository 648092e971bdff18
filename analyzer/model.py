"""Domain dataclasses shared by the service: canaries, stages, windows, ticks, decisions,
deliveries, and the enums that steer them (judges, the no-data and inconclusive policies).

Frozen and slotted; state changes produce new values (``dataclasses.replace``). pydantic stays
at the edges (API schemas, config files); these are what the lifecycle, the scheduler and the
store pass around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, assert_never

from analyzer.metricdata import MetricData

__all__ = [
    "Action",
    "Canary",
    "Decision",
    "Delivery",
    "DeliveryState",
    "InconclusivePolicy",
    "JudgeName",
    "Mode",
    "NoDataPolicy",
    "Phase",
    "Side",
    "Stage",
    "Tick",
    "Verdict",
    "Window",
]


class Phase(StrEnum):
    """Where a canary is: pending → warmup → running(stage k) → a terminal phase; or paused."""

    PENDING = "pending"
    WARMUP = "warmup"
    RUNNING = "running"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """No more ticks happen in a terminal phase."""
        return self in _TERMINAL


_TERMINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED})


class Mode(StrEnum):
    """``dry-run`` canaries are judged and recorded the same, but no webhook fires."""

    LIVE = "live"
    DRY_RUN = "dry-run"


class Action(StrEnum):
    """What a decision asks of the deploy system; the first three are webhook events."""

    ROLLBACK = "rollback"
    STEP = "step"
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"

    @property
    def notifies(self) -> bool:
        """Whether the decision is delivered to the webhook."""
        return self in (Action.ROLLBACK, Action.STEP, Action.PROMOTE)


class Verdict(StrEnum):
    """A tick's verdict: how the evidence of this poll reads."""

    PASS = "pass"
    FAIL = "fail"
    RUNNING = "running"
    INCONCLUSIVE = "inconclusive"
    NONE = "none"


class JudgeName(StrEnum):
    """The judges a metric may name (DESIGN.md §3)."""

    MANN_WHITNEY = "mann-whitney"
    THRESHOLD = "threshold"
    SEQUENTIAL_COUNT = "sequential-count"
    SEQUENTIAL_MEAN = "sequential-mean"

    @property
    def sequential(self) -> bool:
        """Whether it is an anytime-valid sequential test, recomputed on every poll."""
        match self:
            case JudgeName.SEQUENTIAL_COUNT | JudgeName.SEQUENTIAL_MEAN:
                return True
            case JudgeName.MANN_WHITNEY | JudgeName.THRESHOLD:
                return False
            case _:
                assert_never(self)


class NoDataPolicy(StrEnum):
    """``on_no_data``: what a poll without any usable data does."""

    HOLD = "hold"
    ROLLBACK = "rollback"


class InconclusivePolicy(StrEnum):
    """``on_inconclusive``: what the end of a stage without a passing score does."""

    PAUSE = "pause"
    ROLLBACK = "rollback"


class DeliveryState(StrEnum):
    """Where a webhook delivery is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """One traffic stage: the canary's weight (percent) for ``duration_s``; the stage may end
    early, once every sequential metric has proven non-inferiority, after ``min_duration_s``."""

    weight: float
    duration_s: float
    min_duration_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Side:
    """One deployment: the labels that select its series, and for the scrape source its
    exposition endpoints."""

    labels: dict[str, str]
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Canary:
    """A registered canary with its current state.

    Times are seconds since the epoch from the injected clock. ``stage_started_at`` is when the
    current stage began and ``analysis_started_at`` when judging began (after warm-up); a
    restart resumes from these stored values rather than from zero.
    """

    id: str
    name: str
    service: str
    config_name: str
    config_hash: str
    baseline: Side
    canary: Side
    stages: tuple[Stage, ...]
    webhook_url: str | None
    mode: Mode = Mode.LIVE
    metadata: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    created_at: float
    phase: Phase = Phase.WARMUP
    stage_index: int = 0
    stage_started_at: float
    analysis_started_at: float | None = None
    paused_from: Phase | None = None
    paused_at: float | None = None
    intervals_scored: int = 0
    """Analysis intervals already scored since ``analysis_started_at``."""
    decision_seq: int = 0
    tick_seq: int = 0
    last_reason: str = ""
    last_score: float | None = None
    updated_at: float = 0.0

    @property
    def stage(self) -> Stage:
        """The current stage."""
        return self.stages[min(self.stage_index, len(self.stages) - 1)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """What a source returned for one canary: the steps and every metric's data."""

    start: float
    end: float
    step_s: float
    metrics: dict[str, MetricData]

    @property
    def steps(self) -> int:
        """Number of steps in the window, both ends included."""
        return round((self.end - self.start) / self.step_s) + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """One poll of one canary: the verdict, score and per-metric evidence."""

    canary_id: str
    seq: int
    at: float
    phase: Phase
    stage_index: int
    verdict: Verdict
    score: float | None
    reason: str
    results: dict[str, Any]
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A release decision; ``seq`` numbers them per canary and makes the delivery id."""

    canary_id: str
    seq: int
    action: Action
    reason: str
    score: float | None
    stage_index: int
    weight: float
    decided_at: float
    phase_after: Phase
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def delivery_id(self) -> str:
        """Idempotency key of the webhook, stable across retries: ``<canary id>:<seq>``."""
        return f"{self.canary_id}:{self.seq}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A webhook delivery in the outbox."""

    delivery_id: str
    canary_id: str
    seq: int
    event: str
    url: str
    body: bytes
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    created_at: float = 0.0
    delivered_at: float | None = None
