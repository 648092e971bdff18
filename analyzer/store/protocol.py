"""The store: canaries, config versions, ticks, decisions and the webhook outbox.

A small protocol so SQLite (embedded default) and PostgreSQL (several replicas) can back it.
Every state change of a canary is written in one transaction together with what caused it: a
tick with its decision and the decision's outbox row, so a crash can lose neither half.
Writes are fenced: :meth:`Store.save_tick` and :meth:`Store.save_decision` only apply when the
stored canary is still at ``expected_tick_seq`` / ``expected_decision_seq``; otherwise they raise
:class:`~analyzer.errors.Conflict` and nothing is written, so no decision is made twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from analyzer.model import Canary, Decision, Delivery, Phase, Tick

__all__ = ["CanaryPage", "ConfigVersion", "IdempotencyKey", "Store"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigVersion:
    """A judge config as stored: its name, content hash and JSON body."""

    name: str
    hash: str
    body: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryPage:
    """One page of the canary list, newest first, and the cursor of the next (None: the end)."""

    canaries: list[Canary]
    cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotencyKey:
    """A registration's ``Idempotency-Key``: the hash of the body it came with and the canary
    it created. Keys are global (not per token) and kept as long as their canary."""

    key: str
    body_hash: str
    canary_id: str
    created_at: float


class Store(Protocol):
    """What the daemon needs of its storage."""

    async def open(self) -> None:
        """Connect and apply pending schema migrations."""
        ...

    async def close(self) -> None:
        """Flush and disconnect."""
        ...

    async def ready(self) -> bool:
        """Whether the store can take writes now: False while another writer holds its lock
        (``/readyz`` reports not ready meanwhile)."""
        ...

    # configs -------------------------------------------------------------------------------
    async def put_config(self, version: ConfigVersion) -> None:
        """Store a config version and make it the current one for its name."""
        ...

    async def put_config_version(self, version: ConfigVersion) -> None:
        """Store a config version by content hash only: the current version of its name is
        left as it was (an inline config never changes what a name means)."""
        ...

    async def get_config(self, name: str) -> ConfigVersion | None:
        """The current version of a named config."""
        ...

    async def get_config_version(self, config_hash: str) -> ConfigVersion | None:
        """A config by content hash (any version ever stored)."""
        ...

    async def list_configs(self) -> list[ConfigVersion]:
        """Current version of every named config."""
        ...

    # canaries ------------------------------------------------------------------------------
    async def create_canary(
        self,
        canary: Canary,
        registration: dict[str, Any],
        idempotency: IdempotencyKey | None = None,
    ) -> str:
        """Store a new canary with the registration body it came from (and its idempotency
        key, in the same transaction); the id stored. When the key is already taken by the same
        body nothing is written and its canary's id is returned; by another body: Conflict."""
        ...

    async def get_idempotency(self, key: str) -> IdempotencyKey | None:
        """The registration an idempotency key was used for."""
        ...

    async def get_canary(self, canary_id: str) -> Canary | None:
        """One canary's current state."""
        ...

    async def list_canaries(self, phase: Phase | None = None) -> list[Canary]:
        """All canaries (optionally in one phase), newest first."""
        ...

    async def page_canaries(
        self, phase: Phase | None, *, limit: int, cursor: str | None
    ) -> CanaryPage:
        """Up to ``limit`` canaries newest first, from where ``cursor`` (a page's ``cursor``)
        left off; InvalidInput on ``cursor`` for one this store did not make."""
        ...

    async def save_tick(
        self,
        canary: Canary,
        tick: Tick,
        decision: Decision | None,
        delivery: Delivery | None,
        *,
        expected_tick_seq: int,
    ) -> None:
        """Atomically: the canary's new state, the tick, and the decision with its outbox row."""
        ...

    async def save_decision(
        self,
        canary: Canary,
        decision: Decision,
        delivery: Delivery | None,
        *,
        expected_decision_seq: int,
    ) -> None:
        """Atomically: a decision made outside a tick (abort, promote, pause, resume)."""
        ...

    async def list_ticks(self, canary_id: str, limit: int = 1000) -> list[Tick]:
        """A canary's ticks, oldest first (the newest ``limit``)."""
        ...

    async def ticks_after(self, canary_id: str, after_seq: int, limit: int) -> list[Tick]:
        """Up to ``limit`` of a canary's ticks with ``seq > after_seq``, oldest first."""
        ...

    async def list_decisions(self, canary_id: str) -> list[Decision]:
        """A canary's decisions in order."""
        ...

    # outbox --------------------------------------------------------------------------------
    async def list_deliveries(self, canary_id: str) -> list[Delivery]:
        """A canary's deliveries in decision order."""
        ...

    async def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        """Pending deliveries due by ``now``; only the oldest pending one per canary, so one
        canary's deliveries go out in decision order."""
        ...

    async def update_delivery(self, delivery: Delivery) -> None:
        """Record an attempt's outcome (state, attempts, next attempt, error)."""
        ...

    async def delivery_counts(self) -> dict[str, int]:
        """Number of deliveries by state (for /metrics)."""
        ...
