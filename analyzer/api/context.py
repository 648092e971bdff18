"""What the API's handlers share: the fleet, telemetry, tokens and the policy (the app's key)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from analyzer.api.auth import Token
from analyzer.api.policy import ApiPolicy
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet

__all__ = ["CTX", "ApiContext"]


@dataclass(slots=True, kw_only=True)
class ApiContext:
    """What the handlers need."""

    fleet: Fleet
    telemetry: Telemetry
    tokens: list[Token]
    allowed_hosts: list[str]
    scrape_mode: bool
    ready: bool = False
    policy: ApiPolicy = field(default_factory=ApiPolicy)
    """Read access, inline configs and size limits (``ApiPolicy.of(settings)`` in the daemon)."""


CTX = web.AppKey("ctx", ApiContext)
