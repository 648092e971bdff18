"""structlog setup: JSON lines when not a TTY, readable console output when it is.

Context (``canary_id``, ``service``) is bound with structlog's contextvars where a canary's work
runs — each tick's fetch and decision in the scheduler, each manual action in the fleet — and
merged into every line logged there; event names are ``noun.past_tense``. Secrets never reach a
log line: tokens stay ``SecretStr`` and the webhook signature is not logged; a last processor
also masks anything shaped like a bearer header.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging"]

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"']+")


def _mask_bearer(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and "earer" in value:
            event[key] = _BEARER.sub(r"\1[redacted]", value)
    return event


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog once for the process."""
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_bearer,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
