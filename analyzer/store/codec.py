"""Rows ⇄ domain dataclasses for the SQL stores.

Each ``*_params`` function turns a dataclass into named SQL parameters (its table's columns);
each ``*_from_row`` builds the dataclass back from a row. Nested values (sides, stages,
metadata, results, evidence) are JSON text; numpy scalars and arrays become plain numbers and
lists; times stay floats (seconds since the epoch). A row that cannot be decoded raises
``ValueError`` (the store reports it as :class:`~analyzer.errors.StoreError`).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import numpy as np

from analyzer.model import (
    Action,
    Canary,
    Decision,
    Delivery,
    DeliveryState,
    Mode,
    Phase,
    Side,
    Stage,
    Tick,
    Verdict,
)
from analyzer.store import ConfigVersion

__all__ = [
    "CANARY_COLUMNS",
    "DECISION_COLUMNS",
    "DELIVERY_COLUMNS",
    "TICK_COLUMNS",
    "canary_from_row",
    "canary_params",
    "config_from_row",
    "config_params",
    "decision_from_row",
    "decision_params",
    "delivery_from_row",
    "delivery_params",
    "dump_json",
    "load_json",
    "tick_from_row",
    "tick_params",
]


class Row(Protocol):
    """A result row addressable by column name (``sqlite3.Row`` qualifies)."""

    def __getitem__(self, key: str, /) -> Any: ...


CANARY_COLUMNS = (
    "id", "name", "service", "config_name", "config_hash", "baseline", "canary", "stages",
    "webhook_url", "mode", "metadata", "variables", "created_at", "phase", "stage_index",
    "stage_started_at", "analysis_started_at", "paused_from", "decision_seq", "tick_seq",
    "last_reason", "last_score", "updated_at", "paused_at", "intervals_scored",
)  # fmt: skip
"""The canaries columns that mirror :class:`Canary` (the table also keeps ``registration``)."""

TICK_COLUMNS = (
    "canary_id", "seq", "at", "phase", "stage_index", "verdict", "score", "reason", "results",
    "duration_s",
)  # fmt: skip

DECISION_COLUMNS = (
    "canary_id", "seq", "action", "reason", "score", "stage_index", "weight", "decided_at",
    "phase_after", "evidence",
)  # fmt: skip

DELIVERY_COLUMNS = (
    "delivery_id", "canary_id", "seq", "event", "url", "body", "state", "attempts",
    "next_attempt_at", "last_error", "created_at", "delivered_at",
)  # fmt: skip


# JSON ----------------------------------------------------------------------------------------
def _plain(value: object) -> object:
    """``json.dumps`` fallback: numpy values and sets become plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def dump_json(value: object) -> str:
    """Compact JSON text; NaN and ±inf are kept (Python's JSON reads them back)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_plain)


def load_json(text: str) -> Any:
    """Parse stored JSON text."""
    return json.loads(text)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# configs -------------------------------------------------------------------------------------
def config_params(version: ConfigVersion) -> dict[str, object]:
    """Named parameters for the ``configs`` table."""
    return {
        "name": version.name,
        "hash": version.hash,
        "body": dump_json(version.body),
        "created_at": version.created_at,
    }


def config_from_row(row: Row) -> ConfigVersion:
    """A config version from a ``configs`` row."""
    return ConfigVersion(
        name=row["name"],
        hash=row["hash"],
        body=load_json(row["body"]),
        created_at=float(row["created_at"]),
    )


# canaries ------------------------------------------------------------------------------------
def _side_json(side: Side) -> str:
    return dump_json({"labels": side.labels, "targets": list(side.targets)})


def _side(text: str) -> Side:
    data = load_json(text)
    return Side(labels=dict(data["labels"]), targets=tuple(data.get("targets", ())))


def _stages(text: str) -> tuple[Stage, ...]:
    return tuple(
        Stage(
            weight=float(s["weight"]),
            duration_s=float(s["duration_s"]),
            min_duration_s=float(s.get("min_duration_s", 0.0)),
        )
        for s in load_json(text)
    )


def canary_params(canary: Canary) -> dict[str, object]:
    """Named parameters for the :data:`CANARY_COLUMNS` of a canary."""
    stages = canary.stages
    return {
        "id": canary.id,
        "name": canary.name,
        "service": canary.service,
        "config_name": canary.config_name,
        "config_hash": canary.config_hash,
        "baseline": _side_json(canary.baseline),
        "canary": _side_json(canary.canary),
        "stages": dump_json(
            [
                {"weight": s.weight, "duration_s": s.duration_s, "min_duration_s": s.min_duration_s}
                for s in stages
            ]
        ),
        "webhook_url": canary.webhook_url,
        "mode": canary.mode.value,
        "metadata": dump_json(canary.metadata),
        "variables": dump_json(canary.variables),
        "created_at": canary.created_at,
        "phase": canary.phase.value,
        "stage_index": canary.stage_index,
        "stage_started_at": canary.stage_started_at,
        "analysis_started_at": canary.analysis_started_at,
        "paused_from": None if canary.paused_from is None else canary.paused_from.value,
        "decision_seq": canary.decision_seq,
        "tick_seq": canary.tick_seq,
        "last_reason": canary.last_reason,
        "last_score": canary.last_score,
        "updated_at": canary.updated_at,
        "paused_at": canary.paused_at,
        "intervals_scored": canary.intervals_scored,
    }


def canary_from_row(row: Row) -> Canary:
    """A canary from a ``canaries`` row."""
    paused_from = row["paused_from"]
    return Canary(
        id=row["id"],
        name=row["name"],
        service=row["service"],
        config_name=row["config_name"],
        config_hash=row["config_hash"],
        baseline=_side(row["baseline"]),
        canary=_side(row["canary"]),
        stages=_stages(row["stages"]),
        webhook_url=row["webhook_url"],
        mode=Mode(row["mode"]),
        metadata=load_json(row["metadata"]),
        variables=load_json(row["variables"]),
        created_at=float(row["created_at"]),
        phase=Phase(row["phase"]),
        stage_index=int(row["stage_index"]),
        stage_started_at=float(row["stage_started_at"]),
        analysis_started_at=_optional_float(row["analysis_started_at"]),
        paused_from=None if paused_from is None else Phase(paused_from),
        decision_seq=int(row["decision_seq"]),
        tick_seq=int(row["tick_seq"]),
        last_reason=row["last_reason"],
        last_score=_optional_float(row["last_score"]),
        updated_at=float(row["updated_at"]),
        paused_at=_optional_float(row["paused_at"]),
        intervals_scored=int(row["intervals_scored"]),
    )


# ticks and decisions -------------------------------------------------------------------------
def tick_params(tick: Tick) -> dict[str, object]:
    """Named parameters for the ``ticks`` table."""
    return {
        "canary_id": tick.canary_id,
        "seq": tick.seq,
        "at": tick.at,
        "phase": tick.phase.value,
        "stage_index": tick.stage_index,
        "verdict": tick.verdict.value,
        "score": tick.score,
        "reason": tick.reason,
        "results": dump_json(tick.results),
        "duration_s": tick.duration_s,
    }


def tick_from_row(row: Row) -> Tick:
    """A tick from a ``ticks`` row."""
    return Tick(
        canary_id=row["canary_id"],
        seq=int(row["seq"]),
        at=float(row["at"]),
        phase=Phase(row["phase"]),
        stage_index=int(row["stage_index"]),
        verdict=Verdict(row["verdict"]),
        score=_optional_float(row["score"]),
        reason=row["reason"],
        results=load_json(row["results"]),
        duration_s=float(row["duration_s"]),
    )


def decision_params(decision: Decision) -> dict[str, object]:
    """Named parameters for the ``decisions`` table."""
    return {
        "canary_id": decision.canary_id,
        "seq": decision.seq,
        "action": decision.action.value,
        "reason": decision.reason,
        "score": decision.score,
        "stage_index": decision.stage_index,
        "weight": decision.weight,
        "decided_at": decision.decided_at,
        "phase_after": decision.phase_after.value,
        "evidence": dump_json(decision.evidence),
    }


def decision_from_row(row: Row) -> Decision:
    """A decision from a ``decisions`` row."""
    return Decision(
        canary_id=row["canary_id"],
        seq=int(row["seq"]),
        action=Action(row["action"]),
        reason=row["reason"],
        score=_optional_float(row["score"]),
        stage_index=int(row["stage_index"]),
        weight=float(row["weight"]),
        decided_at=float(row["decided_at"]),
        phase_after=Phase(row["phase_after"]),
        evidence=load_json(row["evidence"]),
    )


# outbox --------------------------------------------------------------------------------------
def delivery_params(delivery: Delivery) -> dict[str, object]:
    """Named parameters for the ``outbox`` table."""
    return {
        "delivery_id": delivery.delivery_id,
        "canary_id": delivery.canary_id,
        "seq": delivery.seq,
        "event": delivery.event,
        "url": delivery.url,
        "body": bytes(delivery.body),
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


def delivery_from_row(row: Row) -> Delivery:
    """A delivery from an ``outbox`` row."""
    return Delivery(
        delivery_id=row["delivery_id"],
        canary_id=row["canary_id"],
        seq=int(row["seq"]),
        event=row["event"],
        url=row["url"],
        body=bytes(row["body"]),
        state=DeliveryState(row["state"]),
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        last_error=row["last_error"],
        created_at=float(row["created_at"]),
        delivered_at=_optional_float(row["delivered_at"]),
    )
