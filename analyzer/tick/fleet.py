"""The live canaries: registration, manual actions and recording each state change.

Every change of a canary goes through a per-canary lock and one store transaction (state, tick,
decision, outbox row), fenced on the canary's sequence numbers, so the scheduler and the API
never decide twice or over each other.

A live canary's metadata stays in the store, not in memory (nothing judged reads it): memory per
canary does not grow with what a pipeline attaches. :meth:`Fleet.stored` reads it back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from analyzer.clock import Clock
from analyzer.configs.catalog import Catalog
from analyzer.errors import NotFound
from analyzer.model import Action, Canary, Decision, Delivery, Mode, Phase, Side, Stage, Tick
from analyzer.store.protocol import IdempotencyKey, Store
from analyzer.telemetry import Telemetry
from analyzer.tick.lifecycle import Step, apply_action
from analyzer.webhooks.message import make_delivery

__all__ = ["Fleet", "Registration"]

log = structlog.get_logger("canaryd.fleet")


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """A validated registration request (the API's schema turns JSON into this)."""

    name: str
    service: str
    config_hash: str
    config_name: str
    baseline: Side
    canary: Side
    stages: tuple[Stage, ...]
    webhook_url: str | None
    mode: Mode = Mode.LIVE
    metadata: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


class Fleet:
    """In-memory view of the canaries, backed by the store."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        clock: Clock,
        telemetry: Telemetry,
        *,
        public_url: str,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.telemetry = telemetry
        self.public_url = public_url.rstrip("/")
        self.on_change = on_change
        self.canaries: dict[str, Canary] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.accepting = True

    def lock(self, canary_id: str) -> asyncio.Lock:
        """The lock that serialises changes of one canary."""
        return self._locks.setdefault(canary_id, asyncio.Lock())

    async def load(self) -> int:
        """Resume the stored canaries that are not finished; returns how many."""
        for canary in await self.store.list_canaries():
            if not canary.phase.terminal:
                await self.catalog.by_hash(canary.config_hash)
                self.canaries[canary.id] = _in_memory(canary)
        return len(self.canaries)

    def phase_counts(self) -> dict[str, int]:
        """Live canaries by phase (finished ones leave memory)."""
        counts = {str(p): 0 for p in Phase if not p.terminal}
        for canary in self.canaries.values():
            counts[str(canary.phase)] = counts.get(str(canary.phase), 0) + 1
        return counts

    async def get(self, canary_id: str) -> Canary:
        """A canary by id, live or finished."""
        live = self.canaries.get(canary_id)
        if live is not None:
            return live
        stored = await self.store.get_canary(canary_id)
        if stored is None:
            raise NotFound(f"no canary {canary_id!r}")
        return stored

    async def stored(self, canary_id: str) -> Canary:
        """A canary by id as stored, metadata included."""
        stored = await self.store.get_canary(canary_id)
        if stored is None:
            raise NotFound(f"no canary {canary_id!r}")
        return stored

    async def register(self, reg: Registration) -> Canary:
        """Create a canary in warm-up; it is judged from the next scheduler wake-up."""
        canary, _ = await self.register_once(reg)
        return canary

    async def register_once(
        self, reg: Registration, key: str | None = None, body_hash: str = ""
    ) -> tuple[Canary, bool]:
        """Create a canary, once per idempotency ``key``: (the canary, whether it was created
        now). A key already used with the same ``body_hash`` gives its canary as stored and
        creates nothing; with another body the store raises Conflict."""
        now = self.clock.now()
        canary = Canary(
            id=uuid.uuid4().hex,
            name=reg.name,
            service=reg.service,
            config_name=reg.config_name,
            config_hash=reg.config_hash,
            baseline=reg.baseline,
            canary=reg.canary,
            stages=reg.stages,
            webhook_url=reg.webhook_url,
            mode=reg.mode,
            metadata=reg.metadata,
            variables=reg.variables,
            created_at=now,
            phase=Phase.WARMUP,
            stage_started_at=now,
            updated_at=now,
            last_reason="registered",
        )
        idempotency = None
        if key is not None:
            idempotency = IdempotencyKey(
                key=key, body_hash=body_hash, canary_id=canary.id, created_at=now
            )
        stored_id = await self.store.create_canary(canary, reg.body, idempotency)
        if stored_id != canary.id:
            log.info("canary.registration_repeated", canary_id=stored_id)
            return await self.stored(stored_id), False
        self.canaries[canary.id] = _in_memory(canary)
        log.info("canary.registered", canary_id=canary.id, service=canary.service, name=canary.name)
        self.on_change()
        return canary, True

    def evidence_url(self, canary_id: str) -> str:
        """Where a decision's evidence can be read."""
        return f"{self.public_url}/api/v1/canaries/{canary_id}"

    def outbox_row(self, canary: Canary, decision: Decision | None) -> Delivery | None:
        """The webhook delivery a decision of ``canary`` (its state after the decision) sends,
        or None when it sends none; recorded in the same transaction as the decision."""
        if decision is None:
            return None
        return make_delivery(canary, decision, self.evidence_url(canary.id), self.clock.now())

    async def act(self, canary_id: str, action: Action, reason: str) -> Canary:
        """Apply a manual action (abort, promote, pause, resume) and record its decision."""
        async with self.lock(canary_id):
            canary = await self.get(canary_id)
            with structlog.contextvars.bound_contextvars(
                canary_id=canary.id, service=canary.service
            ):
                step = apply_action(canary, action, self.clock.now(), reason)
                assert step.decision is not None  # apply_action always decides
                delivery = self.outbox_row(step.canary, step.decision)
                await self.store.save_decision(
                    step.canary, step.decision, delivery, expected_decision_seq=canary.decision_seq
                )
                self._remember(step.canary)
                self._log_decision(step.canary, step.decision)
                return step.canary

    async def commit(
        self, before: Canary, step: Step, tick: Tick, delivery: Delivery | None
    ) -> Canary:
        """Record one tick (caller holds the canary's lock) in one transaction: the state, the
        tick, its decision and the decision's outbox row; fenced on ``before.tick_seq``."""
        state = replace(step.canary, tick_seq=before.tick_seq + 1, last_reason=step.reason)
        await self.store.save_tick(
            state, tick, step.decision, delivery, expected_tick_seq=before.tick_seq
        )
        self._remember(state)
        if step.decision is not None:
            self._log_decision(state, step.decision)
        return state

    def _remember(self, canary: Canary) -> None:
        if canary.phase.terminal:
            self.canaries.pop(canary.id, None)
            self._locks.pop(canary.id, None)
        else:
            self.canaries[canary.id] = _in_memory(canary)
        self.on_change()

    def _log_decision(self, canary: Canary, decision: Decision) -> None:
        self.telemetry.decisions.labels(action=str(decision.action)).inc()
        log.info(
            "decision.made",
            action=str(decision.action),
            seq=decision.seq,
            phase=str(canary.phase),
            weight=decision.weight,
            score=decision.score,
            reason=decision.reason,
            dry_run=canary.mode is Mode.DRY_RUN,
        )


def _in_memory(canary: Canary) -> Canary:
    """What the fleet keeps of a live canary: everything but its metadata (in the store)."""
    return replace(canary, metadata={}) if canary.metadata else canary
