"""The hot loop: find the due canaries, and tick each — fetch → judge → decide → record.

Every due canary's tick is its own task: it proceeds as soon as its own fetch completes or
times out, so a slow canary (a hanging target, a huge body, a slow Prometheus) never delays
another's tick or kill-switch. Fetches are bounded by a semaphore (FIFO, so past capacity the
oldest due tick goes first and lag grows smoothly) and by a hard deadline per fetch on top of
the source's own timeout; judging — the CPU work — runs in a worker thread so the event loop
never stalls; then the canary's decision is taken and recorded under its lock. A canary has at
most one tick in flight. Ticks are due on a fixed grid (``anchor + k·step``), so the work time
is subtracted from the sleep and ticks do not drift; a tick that comes late skips to the next
slot rather than piling up.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog

from analyzer.clock import Clock
from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.errors import CanarydError, InternalError, InvalidInput
from analyzer.model import Canary, Phase, Tick, Window
from analyzer.sources.protocol import FetchRequest, MetricQuery, MetricSource
from analyzer.tick.duequeue import Due, DueQueue
from analyzer.tick.evaluation import Evaluation
from analyzer.tick.fleet import Fleet
from analyzer.tick.judging import judge_due
from analyzer.tick.lifecycle import Step, next_step, wants_score, window_bounds
from analyzer.tick.report import report_tick

__all__ = ["Scheduler"]

log = structlog.get_logger("canaryd.scheduler")

_LIVE = frozenset({Phase.WARMUP, Phase.RUNNING, Phase.PENDING})
"""The phases that are ticked."""
_JUDGE_THREADS = 2
_FAILED_WAKE_PAUSE_S = 1.0
"""How long canaries wait after a wake-up (or their own config lookup) failed outright."""


class Scheduler:
    """Ticks every live canary on its step grid."""

    def __init__(
        self,
        fleet: Fleet,
        source: MetricSource,
        clock: Clock,
        *,
        max_concurrency: int = 256,
        fetch_timeout_s: float | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise InvalidInput("max_concurrency", f"must be ≥ 1, got {max_concurrency!r}")
        if fetch_timeout_s is not None and not fetch_timeout_s > 0:
            raise InvalidInput("fetch_timeout_s", f"must be positive, got {fetch_timeout_s!r}")
        self.fleet = fleet
        self.source = source
        self.clock = clock
        self._limit = asyncio.Semaphore(max_concurrency)
        self._judges = ThreadPoolExecutor(
            max_workers=min(_JUDGE_THREADS, os.cpu_count() or 1), thread_name_prefix="judge"
        )
        """Judging's worker threads: few, as judging is CPU work that mostly holds the GIL
        (more threads would only contend for it); ticks queue for them in order."""
        self._fetch_timeout_s = fetch_timeout_s
        """A hard bound on one canary's whole fetch (None: the source's own timeouts only)."""
        self._queue = DueQueue()
        self._idle: set[str] = set()
        """Canaries in a phase that is not ticked (paused), out of the queue until resumed."""
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        """The tick in flight of each canary that has one."""
        self.parked = asyncio.Event()
        """Set while :meth:`run` sleeps until :attr:`parked_until` with no tick in flight:
        nothing changes until the clock reaches it, a canary is poked, or ``stop`` is set. (A
        test jumps a fake clock only while the scheduler is parked, never mid-tick.)"""
        self.parked_until = 0.0

    def poke(self) -> None:
        """Something changed (a registration, an action): look at the canaries again now."""
        self._wake.set()

    # -- schedule ---------------------------------------------------------------------------
    def _slot_after(self, canary: Canary, config: JudgeConfig, now: float) -> float:
        """The first grid time strictly after ``now``."""
        if canary.phase is Phase.WARMUP:
            return max(canary.created_at + config.warmup, now + 1e-3)
        anchor = canary.analysis_started_at or canary.created_at
        k = math.floor((now - anchor) / config.step + 1e-9) + 1
        return anchor + k * config.step

    def _requeue(self, canary_id: str) -> float | None:
        """A finished tick's canary back in the queue at its next due time (a tick that
        dropped its result, say after a pause meanwhile, did not set one: its old one holds)."""
        return self._queue.requeue(canary_id) if canary_id in self.fleet.canaries else None

    def due(self, now: float) -> list[Due]:
        """Canaries whose next tick is at or before ``now``; finished ones are let go."""
        for gone in self._queue.next_due.keys() - self.fleet.canaries.keys():  # finished since
            self._queue.forget(gone)
            self.source.forget(gone)
            self.fleet.telemetry.release(gone)
        for new in self.fleet.canaries.keys() - self._queue.next_due.keys():  # registered since
            self._queue.set(new, now)
        for idle in list(self._idle):  # paused ones: few, looked at every wake-up
            canary = self.fleet.canaries.get(idle)
            if canary is None or canary.phase in _LIVE:
                self._idle.discard(idle)
                if canary is not None:
                    self._queue.set(idle, now)
        out, taken = [], set()
        for due_at, canary_id in self._queue.pop_due(now):
            canary = self.fleet.canaries.get(canary_id)
            if canary is None or canary_id in taken:
                continue
            if canary_id in self._running:  # in flight: its end puts it back
                continue
            if canary.phase not in _LIVE:
                self._idle.add(canary_id)  # paused: back in the queue when it is resumed
                continue
            try:
                config = self.fleet.catalog.cached(canary.config_hash)
            except InternalError:  # one canary's broken state must not stall the others
                log.exception("tick.config_missing", canary_id=canary.id)
                self._queue.set(canary.id, now + _FAILED_WAKE_PAUSE_S)
                continue
            taken.add(canary_id)
            score_now = wants_score(canary, config, now)
            out.append(Due(canary=canary, config=config, due_at=due_at, score_now=score_now))
        return out

    def next_wake(self, now: float, default: float = 1.0) -> float:
        """Seconds until the earliest due tick (at most ``default``); a canary whose tick is
        in flight is due again only once it has finished."""
        earliest = self._queue.earliest()
        if earliest is None:
            earliest = now + default
        if self.fleet.canaries.keys() - self._queue.next_due.keys():
            earliest = now  # registered since the last wake-up
        return max(0.0, min(earliest, now + default) - now)

    @property
    def in_flight(self) -> int:
        """How many ticks are running now."""
        return len(self._running)

    # -- loop -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; the ticks in flight then finish their recording.

        A failure is contained to the canary it concerns (see ``due`` and ``tick``); should a
        whole wake-up still fail — finding what is due included — it is logged and every live
        canary waits a short pause, so the loop neither stops ticking the fleet nor spins on
        the same failure.
        """
        try:
            while not stop.is_set():
                now = self.clock.now()
                try:
                    for item in self.due(now):
                        self._start(item, now)
                except Exception:  # the loop must outlive any one wake-up
                    log.exception("scheduler.wakeup_failed")
                    self._pause_all(now + _FAILED_WAKE_PAUSE_S)
                await self._sleep(self.next_wake(self.clock.now()), stop)
        finally:
            running = list(self._running.values())
            if running:  # bounded: every fetch has a deadline; the daemon's grace cancels
                await asyncio.gather(*running, return_exceptions=True)
            self._judges.shutdown(wait=False)

    def _start(self, item: Due, now: float) -> None:
        """The canary's tick as its own task; when it ends, the loop looks again."""
        task = asyncio.create_task(self.tick(item, now), name=f"tick-{item.canary.id}")
        self._running[item.canary.id] = task

        def finished(done: asyncio.Task[None]) -> None:
            canary_id = item.canary.id
            if self._running.get(canary_id) is done:
                del self._running[canary_id]
            if not done.cancelled() and done.exception() is not None:
                log.error("tick.failed", canary_id=canary_id, error=repr(done.exception()))
                self._queue.set(canary_id, self.clock.now() + _FAILED_WAKE_PAUSE_S)
            at = self._requeue(canary_id)
            # wake the loop only when it must look sooner than planned, or has parked
            if not self._running or (at is not None and at < self.parked_until):
                self._wake.set()

        task.add_done_callback(finished)

    def _pause_all(self, until: float) -> None:
        """Every live canary's next tick no earlier than ``until``."""
        for canary_id in self.fleet.canaries:
            self._queue.set(canary_id, max(self._queue.next_due.get(canary_id, until), until))

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> None:
        self._wake.clear()
        nap = self.clock.sleep(seconds)  # made first: it fixes the deadline
        self.parked_until = self.clock.now() + seconds
        if not self._running:
            self.parked.set()
        waiters = [
            asyncio.ensure_future(nap),
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(stop.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.parked.clear()
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def tick_batch(self, batch: Sequence[Due], now: float) -> None:
        """Tick every canary of ``batch`` concurrently, each on its own (as the loop does), and
        return when all have finished."""
        async with asyncio.TaskGroup() as group:
            for item in batch:
                group.create_task(self.tick(item, now))
        for item in batch:
            self._requeue(item.canary.id)

    async def tick(self, item: Due, now: float) -> None:
        """One canary's tick: fetch → judge (in a worker thread) → decide → act and record."""
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            canary_id=item.canary.id, service=item.canary.service
        ):
            window = await self._fetch_one(item, now)
            context = contextvars.copy_context()  # the judge's log lines carry the canary too
            ev = await asyncio.get_running_loop().run_in_executor(
                self._judges, context.run, judge_due, item, window
            )
            await self._decide_and_record(item, window, ev, now, started)

    # -- fetch ------------------------------------------------------------------------------
    def request(self, canary: Canary, config: JudgeConfig, now: float) -> FetchRequest:
        """What to fetch for one canary's tick."""
        start, end = window_bounds(canary, config, now)
        metrics = tuple(
            MetricQuery(name=m.name, kind=m.kind, templates=m.templates()) for m in config.metrics
        )
        return FetchRequest(
            canary_id=canary.id,
            metrics=metrics,
            baseline=canary.baseline,
            canary=canary.canary,
            start=start,
            end=end,
            step_s=config.step,
            variables={**config.variables, **canary.variables},
        )

    async def _fetch_one(self, item: Due, now: float) -> Window | str | None:
        """The canary's window; None when it needs none (warm-up); the error text when the
        fetch failed as a whole (a template the source refuses, the hard deadline passed) —
        never an exception, so one canary cannot fail another's tick."""
        if item.canary.phase is not Phase.RUNNING:
            return None
        request = self.request(item.canary, item.config, now)
        async with self._limit:
            try:
                async with asyncio.timeout(self._fetch_timeout_s):
                    return await self.source.fetch(request)
            except CanarydError as exc:
                log.warning("tick.fetch_failed", error=str(exc))
                return f"fetch failed: {exc}"
            except TimeoutError:
                log.warning("tick.fetch_timed_out", timeout_s=self._fetch_timeout_s)
                return f"fetch failed: no answer within {self._fetch_timeout_s:g}s"

    # -- decide and record ------------------------------------------------------------------
    async def _decide_and_record(
        self, item: Due, window: Window | str | None, ev: Evaluation, now: float, started: float
    ) -> None:
        """decide → act (the decision's outbox row) → record, under the canary's lock."""
        async with self.fleet.lock(item.canary.id):
            current = self._unchanged(item)
            if current is None:
                return
            step = next_step(current, item.config, ev, now)
            delivery = self.fleet.outbox_row(step.canary, step.decision)
            tick = self._tick(current, step, ev, now, time.perf_counter() - started)
            try:
                saved = await self.fleet.commit(current, step, tick, delivery)
            except CanarydError as exc:  # store trouble or a lost fence: retry next slot
                log.error("tick.record_failed", error=str(exc))
                self._queue.set(current.id, self._slot_after(current, item.config, now))
                return
        self._queue.set(saved.id, self._slot_after(saved, item.config, now))
        report_tick(
            self.fleet.telemetry,
            saved,
            step,
            ev,
            window,
            lag_s=max(0.0, now - item.due_at),
            took_s=tick.duration_s,
        )

    def _unchanged(self, item: Due) -> Canary | None:
        """The live canary if nothing changed it since ``item`` was taken (an action, a finish),
        else None: the evaluation is stale. A canary that finished meanwhile is forgotten by
        the source again, in case this tick's fetch refilled what the finish let go."""
        current = self.fleet.canaries.get(item.canary.id)
        if current is None:
            self.source.forget(item.canary.id)
            self.fleet.telemetry.release(item.canary.id)
            return None
        if (current.tick_seq, current.decision_seq) != (
            item.canary.tick_seq,
            item.canary.decision_seq,
        ):
            return None
        return current

    def _tick(self, canary: Canary, step: Step, ev: Evaluation, now: float, took: float) -> Tick:
        return Tick(
            canary_id=canary.id,
            seq=canary.tick_seq + 1,
            at=now,
            phase=step.canary.phase,
            stage_index=step.canary.stage_index,
            verdict=step.verdict,
            score=step.score,
            reason=step.reason,
            results=ev.record(),
            duration_s=took,
        )
