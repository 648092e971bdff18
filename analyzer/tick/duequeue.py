"""When each live canary is due next: a dict for lookups and a heap for "what is due now".

A wake-up pops only the entries that are due, so its cost follows the due canaries, not the
fleet (5,000 canaries registered across one step wake the loop every few milliseconds).
Setting a canary's time pushes an entry; an entry whose time is no longer the canary's is stale
and skipped, so a time can be replaced without searching the heap.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.model import Canary

__all__ = ["Due", "DueQueue"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Due:
    """A canary due for a tick, with what its tick needs."""

    canary: Canary
    config: JudgeConfig
    due_at: float
    score_now: bool


class DueQueue:
    """Canary id → next due time, with the earliest first."""

    def __init__(self) -> None:
        self.next_due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def set(self, canary_id: str, at: float) -> None:
        """The canary is due at ``at`` (replacing any earlier time)."""
        self.next_due[canary_id] = at
        heapq.heappush(self._heap, (at, canary_id))

    def requeue(self, canary_id: str) -> float | None:
        """Put the canary back at its current time (its popped entry is gone); the time."""
        at = self.next_due.get(canary_id)
        if at is not None:
            heapq.heappush(self._heap, (at, canary_id))
        return at

    def forget(self, canary_id: str) -> None:
        """The canary has finished."""
        self.next_due.pop(canary_id, None)

    def _stale(self, entry: tuple[float, str]) -> bool:
        return self.next_due.get(entry[1]) != entry[0]

    def pop_due(self, now: float) -> Iterator[tuple[float, str]]:
        """Pop (due at, canary id) of every canary due by ``now``, earliest first."""
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if not self._stale(entry):
                yield entry

    def earliest(self) -> float | None:
        """The earliest due time queued, if any."""
        while self._heap and self._stale(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
