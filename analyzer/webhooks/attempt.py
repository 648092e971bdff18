"""One webhook attempt: the signed POST, what the receiver answered, and what it comes to.

:func:`post` sends a delivery once (no redirects followed, a bounded excerpt of the answer read,
the signature and the secret scrubbed from it); :func:`classify` turns the answer into an
:class:`Attempt` (delivered, retry, failed) for the dispatcher's retry policy. aiohttp's
exceptions are translated in :func:`translated_errors` and never leave this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import aiohttp

from analyzer.errors import PermanentDelivery, RetryableDelivery
from analyzer.model import Delivery
from analyzer.webhooks.message import sign

__all__ = ["USER_AGENT", "Attempt", "Outcome", "Response", "classify", "post", "scrub"]

USER_AGENT = "canaryd"
_EXCERPT_BYTES = 256
_RETRY_STATUSES = frozenset({408, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})

Outcome = Literal["delivered", "retry", "failed"]
"""Where one attempt leaves a delivery: acknowledged, to be retried, or failed for good."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """What the receiver answered: its status, Retry-After, and a scrubbed excerpt."""

    status: int
    retry_after: str | None
    excerpt: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """What one attempt came to, before the retry policy is applied."""

    outcome: Outcome
    error: str = ""
    status: int | None = None
    retry_after_s: float | None = None


@contextmanager
def translated_errors(timeout_s: float) -> Iterator[None]:
    """The one place aiohttp's (and the timeout's) exceptions become canaryd's."""
    try:
        yield
    except TimeoutError as exc:  # aiohttp's timeout errors are TimeoutErrors too
        raise RetryableDelivery(f"timed out after {timeout_s:g}s") from exc
    except aiohttp.InvalidURL as exc:
        raise PermanentDelivery(f"invalid URL: {type(exc).__name__}") from exc
    except aiohttp.ClientError as exc:
        raise RetryableDelivery(f"{type(exc).__name__}: {exc}") from exc


def retry_after_s(value: str | None) -> float | None:
    """A numeric Retry-After (seconds); HTTP dates and nonsense are ignored."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def classify(response: Response) -> Attempt:
    """The outcome of an answered attempt, by its status (DESIGN §5)."""
    status = response.status
    if 200 <= status < 300:
        return Attempt(outcome="delivered", status=status)
    error = f"HTTP {status}" + (f": {response.excerpt}" if response.excerpt else "")
    if status in _RETRY_STATUSES or status >= 500:
        after = retry_after_s(response.retry_after) if status in _RETRY_AFTER_STATUSES else None
        return Attempt(outcome="retry", error=error, status=status, retry_after_s=after)
    if 300 <= status < 400:
        error += " (redirects are not followed)"
    return Attempt(outcome="failed", error=error, status=status)


async def post(
    session: aiohttp.ClientSession, delivery: Delivery, secret: str, timeout_s: float
) -> Response:
    """POST the delivery's body once, signed with ``secret``; at most ``timeout_s`` in all.

    Raises :class:`RetryableDelivery` (timeout, connection error) or :class:`PermanentDelivery`
    (an invalid URL); any HTTP answer is returned for :func:`classify`."""
    signature = sign(delivery.body, secret)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Canaryd-Event": delivery.event,
        "X-Canaryd-Delivery": delivery.delivery_id,
        "X-Canaryd-Signature-256": signature,
    }
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    with translated_errors(timeout_s):
        async with session.post(
            delivery.url,
            data=delivery.body,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        ) as response:
            excerpt = await response.content.read(_EXCERPT_BYTES)
            text = excerpt.decode("utf-8", "replace")
            return Response(
                status=response.status,
                retry_after=response.headers.get("Retry-After"),
                excerpt=scrub(text, signature.removeprefix("sha256="), secret),
            )


def scrub(text: str, *secrets: str) -> str:
    """A response excerpt fit for logs and the store: one line, none of ``secrets`` in it."""
    text = " ".join(text.split())
    for sensitive in secrets:
        if sensitive:
            text = text.replace(sensitive, "[redacted]")
    return text
