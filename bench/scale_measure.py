"""What the scale benchmark's child measures, and how: the process's CPU, RSS and run-queue wait
read from /proc, and the real components wrapped to time themselves — the source's fetches
(:class:`TimedSource`), the fleet's commits (:class:`MeasuredFleet`) and the scheduler's
ticks (:class:`MeasuredScheduler`, how late each tick started and finished, and where each
wake-up's time went). No analyzer code is changed.
"""

from __future__ import annotations

import contextvars
import math
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analyzer.model import Canary, Delivery, Tick, Window
from analyzer.sources.prometheus import PrometheusSource
from analyzer.sources.protocol import FetchRequest
from analyzer.tick.duequeue import Due
from analyzer.tick.fleet import Fleet
from analyzer.tick.lifecycle import Step
from analyzer.tick.scheduler import Scheduler

__all__ = [
    "Batch",
    "MeasuredFleet",
    "MeasuredScheduler",
    "TimedSource",
    "Wakeup",
    "percentiles",
    "proc_cpu_s",
    "proc_kb",
    "runq_wait_s",
    "self_cpu_s",
]


def proc_kb(field: str, pid: str = "self") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runq_wait_s() -> float:
    """Time the event loop's thread spent runnable but waiting for a CPU (other processes)."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


@dataclass(slots=True)
class Wakeup:
    """The ticks one wake-up of the scheduler started (they share its ``now``), and where
    their time went, added up as they run (seconds of ``time.perf_counter``)."""

    started: float
    ended: float = -math.inf
    size: int = 0
    first_fetch: float = math.inf
    last_fetch: float = -math.inf
    record: float = 0.0


_WAKEUP: contextvars.ContextVar[Wakeup | None] = contextvars.ContextVar("wakeup", default=None)
"""The wake-up of the tick running in this task (its fetches run in tasks that copy it)."""


class TimedSource:
    """The real source, noting when each fetch of a wake-up began and ended (its fetch phase)."""

    def __init__(self, inner: PrometheusSource) -> None:
        self.inner = inner

    async def fetch(self, request: FetchRequest) -> Window:
        """The inner fetch, timed."""
        started = time.perf_counter()
        try:
            return await self.inner.fetch(request)
        finally:
            wakeup = _WAKEUP.get()
            if wakeup is not None:
                wakeup.first_fetch = min(wakeup.first_fetch, started)
                wakeup.last_fetch = max(wakeup.last_fetch, time.perf_counter())

    def forget(self, canary_id: str) -> None:
        """The inner source forgets the canary."""
        self.inner.forget(canary_id)

    async def close(self) -> None:
        """Close the inner source."""
        await self.inner.close()


class MeasuredFleet(Fleet):
    """The fleet, adding up the time its commits (one store transaction each) take."""

    async def commit(
        self, before: Canary, step: Step, tick: Tick, delivery: Delivery | None
    ) -> Canary:
        """The real commit, timed."""
        started = time.perf_counter()
        try:
            return await super().commit(before, step, tick, delivery)
        finally:
            wakeup = _WAKEUP.get()
            if wakeup is not None:
                wakeup.record += time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Batch:
    """One wake-up: how many canaries, and where its time went (seconds)."""

    size: int
    total: float
    fetch: float
    record: float

    @property
    def judge(self) -> float:
        """The rest: judging in the worker thread, deciding, logging, telemetry."""
        return max(0.0, self.total - self.fetch - self.record)


class MeasuredScheduler(Scheduler):
    """The scheduler, recording for every tick how late it started and finished, and for every
    wake-up (the ticks started together, one task each) where its time went."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.lag: list[float] = []
        self.done: list[float] = []
        self._wakeups: dict[float, Wakeup] = {}

    async def tick(self, item: Due, now: float) -> None:
        """The real tick, then its lateness at start and at the end."""
        wakeup = self._wakeups.setdefault(now, Wakeup(started=time.perf_counter()))
        wakeup.size += 1
        token = _WAKEUP.set(wakeup)
        try:
            await super().tick(item, now)
        finally:
            _WAKEUP.reset(token)
            wakeup.ended = max(wakeup.ended, time.perf_counter())
            self.lag.append(now - item.due_at)
            self.done.append(self.clock.now() - item.due_at)

    @property
    def batches(self) -> list[Batch]:
        """Every finished wake-up since the last :meth:`reset`."""
        return [
            Batch(
                size=w.size,
                total=w.ended - w.started,
                fetch=max(0.0, w.last_fetch - w.first_fetch),
                record=w.record,
            )
            for w in self._wakeups.values()
            if w.ended > -math.inf
        ]

    def reset(self) -> None:
        """Forget what was recorded so far."""
        self.lag.clear()
        self.done.clear()
        self._wakeups.clear()
