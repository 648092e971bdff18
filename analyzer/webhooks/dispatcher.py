"""Webhook delivery of decisions: the outbox dispatcher (the message itself is built and signed
in :mod:`analyzer.webhooks.message`).

A decision that notifies (rollback, step, promote) of a live canary becomes an outbox row in the
same transaction that records the decision (:func:`make_delivery`); :class:`WebhookDispatcher`
then POSTs it at least once (DESIGN §5)::

    POST <webhook.url>
    Content-Type: application/json
    X-Canaryd-Event: rollback | step | promote
    X-Canaryd-Delivery: <canary id>:<decision seq>     stable across retries: the idempotency key
    X-Canaryd-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>

2xx acknowledges. 5xx, 408, 429, timeouts and connection errors are retried with capped
exponential backoff and full jitter (a numeric ``Retry-After`` on 429/503 is honoured when
longer) until ``give_up_after_s`` after the decision; other statuses (4xx, and 3xx: redirects are
not followed, so a hook cannot bounce the daemon to another host) fail the delivery. One canary's
deliveries go out one at a time in decision order; which due deliveries start is the fair
queue's choice (:mod:`analyzer.webhooks.fairness`: a cap per destination, suspect receivers
last), so a hanging receiver delays another canary's delivery by at most one attempt timeout.

The URL policy (:func:`analyzer.webhooks.policy.check_webhook_url`) runs at
registration and again before every attempt.

One HTTP attempt (the POST, the reading of its answer, aiohttp's exceptions translated) is
:mod:`analyzer.webhooks.attempt`; this module is the retry policy and the fair queue.
A bad constructor argument (a timeout, backoff or limit that is not positive) is
:class:`~analyzer.errors.InvalidInput` naming the argument. :attr:`WebhookDispatcher.parked`
says when the loop sleeps with nothing in flight, as a fake clock's driver needs to know.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection
from dataclasses import replace

import aiohttp
import structlog

from analyzer.clock import Clock
from analyzer.errors import (
    CanarydError,
    InvalidInput,
    PermanentDelivery,
    RetryableDelivery,
    StoreError,
)
from analyzer.model import Delivery, DeliveryState
from analyzer.store.protocol import Store
from analyzer.webhooks.attempt import Attempt, Outcome, classify, post
from analyzer.webhooks.fairness import Destinations
from analyzer.webhooks.policy import check_webhook_url

__all__ = ["WebhookDispatcher"]

log = structlog.get_logger("canaryd.webhooks")


def _check_positive(**arguments: float) -> None:
    """:class:`InvalidInput` naming the first argument that is not positive."""
    for name, value in arguments.items():
        if not value > 0:
            raise InvalidInput(name, f"must be positive, got {value!r}")


# the dispatcher ---------------------------------------------------------------------------------
class WebhookDispatcher:
    """Sends the outbox: due deliveries concurrently — one per canary at a time, at most
    ``per_destination`` per receiver, answering receivers before suspect ones — with retries."""

    def __init__(
        self,
        store: Store,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        secret: str,
        allowed_hosts: Collection[str],
        timeout_s: float = 10.0,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        give_up_after_s: float = 86400.0,
        max_concurrency: int = 64,
        per_destination: int = 4,
        rng: random.Random,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        _check_positive(
            max_concurrency=max_concurrency,
            per_destination=per_destination,
            timeout_s=timeout_s,
            base_backoff_s=base_backoff_s,
            max_backoff_s=max_backoff_s,
            give_up_after_s=give_up_after_s,
        )
        self._store, self._session, self._clock = store, session, clock
        self._secret = secret
        self._allowed_hosts = allowed_hosts
        self._timeout_s = timeout_s
        self._base_backoff_s, self._max_backoff_s = base_backoff_s, max_backoff_s
        self._give_up_after_s = give_up_after_s
        self._max_concurrency = max_concurrency
        self._rng = rng
        self._on_outcome = on_outcome
        self._in_flight: set[str] = set()
        """Canaries with an attempt in flight (one each)."""
        self._destinations = Destinations(
            max_concurrency=max_concurrency, per_destination=per_destination
        )
        self._sleeping = False
        self.parked = asyncio.Event()
        """Set when :meth:`run` sleeps until its next poll (at :attr:`parked_until`) with no
        delivery in flight: nothing changes until the clock reaches that poll or ``stop`` is
        set. Cleared when it wakes. (A test jumps a fake clock only while the dispatcher is
        parked, never in the middle of a delivery; it may clear the event to wait for the
        next park.)"""
        self.parked_until = 0.0
        """The clock time of the poll the dispatcher sleeps until, once parked."""
        if not secret:
            log.warning("webhook.secret_missing", hint="set a shared secret to sign webhooks")

    # the loop -----------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, poll_s: float = 0.5) -> None:
        """Deliver due rows every ``poll_s`` until ``stop``; then let in-flight ones finish."""
        async with asyncio.TaskGroup() as deliveries:
            while not stop.is_set():
                started = self._clock.now()
                await self._start_due(deliveries)
                await self._pause(stop, poll_s - (self._clock.now() - started))

    async def _start_due(self, deliveries: asyncio.TaskGroup) -> None:
        """Start what the fair queue picks from the due heads (:mod:`.fairness`)."""
        if len(self._in_flight) >= self._max_concurrency:
            return
        try:  # busy canaries' and capped destinations' heads come back too: ask for plenty
            due = await self._store.due_deliveries(
                self._clock.now(), 4 * self._max_concurrency + len(self._in_flight)
            )
        except StoreError as exc:
            log.error("webhook.poll_failed", err=str(exc))
            return
        for delivery in self._destinations.pick(due, sorted(self._in_flight)):
            self._in_flight.add(delivery.canary_id)
            self._destinations.started(delivery)
            deliveries.create_task(self._deliver_owned(delivery))

    async def _deliver_owned(self, delivery: Delivery) -> None:
        answered = True
        try:
            updated = await self.deliver(delivery)
            answered = updated.state is not DeliveryState.PENDING
        except CanarydError as exc:  # the outcome was not recorded: the row stays due
            log.error(
                "webhook.record_failed",
                delivery_id=delivery.delivery_id,
                canary_id=delivery.canary_id,
                err=str(exc),
            )
        finally:
            self._destinations.finished(delivery, answered=answered)
            self._in_flight.discard(delivery.canary_id)
            self._note_parked()

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep on the injected clock, waking early when ``stop`` is set."""
        if seconds <= 0 or stop.is_set():
            await asyncio.sleep(0)
            return
        sleep = self._clock.sleep(seconds)  # made before "parked" is said: it fixes the deadline
        self._sleeping, self.parked_until = True, self._clock.now() + seconds
        self._note_parked()
        try:
            async with asyncio.TaskGroup() as waiters:
                nap = waiters.create_task(sleep)
                wake = waiters.create_task(stop.wait())
                nap.add_done_callback(lambda _: wake.cancel())
                wake.add_done_callback(lambda _: nap.cancel())
        finally:
            self._sleeping = False
            self.parked.clear()

    def _note_parked(self) -> None:
        """Parked: asleep until the next poll, and the last delivery in flight has finished."""
        if self._sleeping and not self._in_flight:
            self.parked.set()

    # one delivery -------------------------------------------------------------------------------
    async def deliver(self, delivery: Delivery) -> Delivery:
        """Make one attempt, record its outcome in the store and return the updated row."""
        attempt = await self._attempt(delivery)
        now = self._clock.now()
        updated = self._settle(delivery, attempt, now)
        await self._store.update_delivery(updated)
        self._report(updated, attempt, now)
        return updated

    async def _attempt(self, delivery: Delivery) -> Attempt:
        try:
            check_webhook_url(delivery.url, self._allowed_hosts)
        except InvalidInput as exc:
            return Attempt(outcome="failed", error=f"webhook URL refused: {exc.message}")
        try:
            response = await post(self._session, delivery, self._secret, self._timeout_s)
        except RetryableDelivery as exc:
            return Attempt(outcome="retry", error=str(exc))
        except PermanentDelivery as exc:
            return Attempt(outcome="failed", error=str(exc))
        return classify(response)

    def _settle(self, delivery: Delivery, attempt: Attempt, now: float) -> Delivery:
        """The row after an attempt: delivered, failed, or pending again with a backoff."""
        attempts = delivery.attempts + 1
        match attempt.outcome:
            case "delivered":
                return replace(
                    delivery,
                    state=DeliveryState.DELIVERED,
                    attempts=attempts,
                    delivered_at=now,
                    last_error="",
                )
            case "failed":
                return replace(
                    delivery,
                    state=DeliveryState.FAILED,
                    attempts=attempts,
                    last_error=attempt.error,
                )
            case "retry":
                return self._reschedule(delivery, attempt, now)

    def _reschedule(self, delivery: Delivery, attempt: Attempt, now: float) -> Delivery:
        attempts = delivery.attempts + 1
        deadline = delivery.created_at + self._give_up_after_s
        if now >= deadline:
            error = f"gave up after {attempts} attempts: {attempt.error}"
            return replace(
                delivery, state=DeliveryState.FAILED, attempts=attempts, last_error=error
            )
        delay = self._backoff_s(delivery.attempts)
        if attempt.retry_after_s is not None:  # honoured when longer, up to the give-up time
            delay = max(delay, min(attempt.retry_after_s, deadline - now))
        return replace(
            delivery,
            state=DeliveryState.PENDING,
            attempts=attempts,
            next_attempt_at=now + delay,
            last_error=attempt.error,
        )

    def _backoff_s(self, previous_attempts: int) -> float:
        """Capped exponential backoff with full jitter in [0.5, 1.0]×."""
        ceiling = min(self._max_backoff_s, self._base_backoff_s * 2.0 ** min(previous_attempts, 64))
        return ceiling * self._rng.uniform(0.5, 1.0)

    def _report(self, updated: Delivery, attempt: Attempt, now: float) -> None:
        fields: dict[str, object] = {
            "delivery_id": updated.delivery_id,
            "canary_id": updated.canary_id,
            "webhook_event": updated.event,  # "event" is structlog's own key
            "attempt": updated.attempts,
        }
        if attempt.status is not None:
            fields["status"] = attempt.status
        outcome: Outcome
        match updated.state:
            case DeliveryState.DELIVERED:
                outcome = "delivered"
                log.info("webhook.delivered", **fields)
            case DeliveryState.PENDING:
                outcome = "retry"
                retry_in_s = round(updated.next_attempt_at - now, 3)
                log.warning(
                    "webhook.retry_scheduled", err=attempt.error, retry_in_s=retry_in_s, **fields
                )
            case DeliveryState.FAILED | DeliveryState.SKIPPED:
                outcome = "failed"
                log.error("webhook.failed", err=updated.last_error, **fields)
        if self._on_outcome is not None:
            self._on_outcome(outcome)
