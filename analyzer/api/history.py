"""The answers that carry a canary's history: its ticks (and a page of them), its decisions,
its webhook deliveries (redacted: :mod:`analyzer.api.redact`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from analyzer.api.redact import public_error, public_url
from analyzer.model import Decision, Delivery, Phase, Tick

__all__ = ["DecisionOut", "DeliveryOut", "TickOut", "TicksOut"]


class TickOut(BaseModel):
    """One recorded tick with its evidence."""

    seq: int
    at: float
    phase: Phase
    stage: int
    verdict: str
    score: float | None
    reason: str
    duration_s: float
    results: dict[str, Any]

    @classmethod
    def of(cls, tick: Tick) -> TickOut:
        """From the domain tick."""
        return cls(
            seq=tick.seq,
            at=tick.at,
            phase=tick.phase,
            stage=tick.stage_index,
            verdict=str(tick.verdict),
            score=tick.score,
            reason=tick.reason,
            duration_s=tick.duration_s,
            results=tick.results,
        )


class TicksOut(BaseModel):
    """``GET /api/v1/canaries/{id}/ticks``: a page of ticks, oldest first."""

    ticks: list[TickOut]
    next: str | None = Field(description="the next page's path; null when this is the last")


class DecisionOut(BaseModel):
    """One recorded decision."""

    seq: int
    action: str
    reason: str
    score: float | None
    stage: int
    weight: float
    decided_at: float
    phase_after: Phase
    delivery_id: str

    @classmethod
    def of(cls, decision: Decision) -> DecisionOut:
        """From the domain decision."""
        return cls(
            seq=decision.seq,
            action=str(decision.action),
            reason=decision.reason,
            score=decision.score,
            stage=decision.stage_index,
            weight=decision.weight,
            decided_at=decision.decided_at,
            phase_after=decision.phase_after,
            delivery_id=decision.delivery_id,
        )


class DeliveryOut(BaseModel):
    """One webhook delivery and where it stands: the URL without userinfo or query, the error
    as a status and a fixed message (never the receiver's body)."""

    delivery_id: str
    event: str
    url: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str
    delivered_at: float | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        """From the domain delivery."""
        return cls(
            delivery_id=d.delivery_id,
            event=d.event,
            url=public_url(d.url),
            state=str(d.state),
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_error=public_error(d.last_error),
            delivered_at=d.delivered_at,
        )
