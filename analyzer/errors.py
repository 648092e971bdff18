"""canaryd's one error tree; a dependency's exceptions are translated at their seam.

CanarydError
├── InvalidInput            bad config, request or recording; names the field (HTTP 422, exit 2)
│   └── UnknownVariable     a query template names a variable nobody declared
├── NotFound                no such canary or config (HTTP 404)
├── Conflict                the action does not fit the canary's phase (HTTP 409)
├── SourceError             the metrics source failed (down, timeout, 5xx, bad payload)
│   ├── SourceUnavailable   could not be reached or timed out
│   └── SourcePayloadError  answered, but with something we cannot use
├── DeliveryError           a webhook delivery failed
│   ├── RetryableDelivery   5xx, 408, 429, timeout, connection error: try again later
│   └── PermanentDelivery   other 4xx, or a host that is not allowed
├── StoreError              the store failed or holds something unexpected
│   └── StoreBusy           another process holds the write lock: retry later (HTTP 503)
└── InternalError           an invariant of canaryd's own broke: a bug, never the caller's fault
"""

from __future__ import annotations

__all__ = [
    "CanarydError",
    "Conflict",
    "DeliveryError",
    "InternalError",
    "InvalidInput",
    "NotFound",
    "PermanentDelivery",
    "RetryableDelivery",
    "SourceError",
    "SourcePayloadError",
    "SourceUnavailable",
    "StoreBusy",
    "StoreError",
    "UnknownVariable",
]


class CanarydError(Exception):
    """Root of every error canaryd raises on purpose."""


class InvalidInput(CanarydError):
    """Input that cannot be accepted; ``field`` names where, ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class UnknownVariable(InvalidInput):
    """A template variable that is neither built in nor declared."""


class NotFound(CanarydError):
    """No such object."""


class Conflict(CanarydError):
    """The request does not fit the current state."""


class SourceError(CanarydError):
    """The metrics source failed."""


class SourceUnavailable(SourceError):
    """The source could not be reached or timed out."""


class SourcePayloadError(SourceError):
    """The source answered with something unusable."""


class DeliveryError(CanarydError):
    """A webhook delivery failed."""


class RetryableDelivery(DeliveryError):
    """A failure worth retrying later."""


class PermanentDelivery(DeliveryError):
    """A failure retrying will not fix."""


class StoreError(CanarydError):
    """The store failed."""


class StoreBusy(StoreError):
    """Another process holds the database's write lock past the busy timeout (HTTP 503 with
    Retry-After; ``/readyz`` is 503 until the lock is free again)."""


class InternalError(CanarydError):
    """An invariant of canaryd's own state does not hold (HTTP 500, logged with its cause)."""
