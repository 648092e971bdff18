"""Bearer tokens and their scopes: parsed from ``CANARYD_API_TOKENS``, checked per request in
constant time.

Scopes: ``register`` (POST /api/v1/canaries), ``act`` (abort, promote, pause, resume),
``config`` (PUT /api/v1/configs/{name}) and ``read`` (GET of canaries, configs and verdicts).
Every scope implies ``read``: whoever may register, act or change configs must see what came
of it; ``read`` alone grants reads only (a dashboard's token). A bare token has every scope.
Reads need no token when none are configured, or with ``CANARYD_PUBLIC_READS=true``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from analyzer.api.schemas import (
    ErrorOut,
)
from analyzer.errors import InvalidInput

__all__ = [
    "PUBLIC_READS",
    "SCOPES",
    "TOKENS",
    "Token",
    "parse_tokens",
    "require_read",
    "require_scope",
]


SCOPES = frozenset({"register", "act", "config", "read"})


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and the scopes it grants."""

    secret: str
    scopes: frozenset[str]


def parse_tokens(entries: list[str]) -> list[Token]:
    """``secret`` (every scope) or ``scope+scope@secret``; unknown scopes are errors."""
    tokens = []
    for i, entry in enumerate(entries):
        scopes_part, sep, secret = entry.rpartition("@")
        scopes = frozenset(scopes_part.split("+")) if sep else SCOPES
        if not secret or not scopes <= SCOPES:
            msg = f"entry {i}: expected TOKEN or SCOPE+SCOPE@TOKEN with scopes {sorted(SCOPES)}"
            raise InvalidInput("CANARYD_API_TOKENS", msg)
        tokens.append(Token(secret=secret, scopes=scopes | {"read"}))
    return tokens


TOKENS = web.AppKey("tokens", list[Token])
"""The app's tokens, set by :func:`~analyzer.api.app.build_app`."""
PUBLIC_READS = web.AppKey("public_reads", bool)
"""Whether reads go without a token (``CANARYD_PUBLIC_READS``), set by ``build_app``."""


def require_read(request: web.Request) -> None:
    """Refuse a read (401, 403) unless reads are public here or it bears a token (any scope
    implies ``read``); with no tokens configured there is nothing to present, reads are open."""
    if request.app[PUBLIC_READS] or not request.app[TOKENS]:
        return
    require_scope(request, "read")


def require_scope(request: web.Request, scope: str) -> None:
    """Refuse the request (401, 403) unless it bears a token with ``scope``."""
    tokens = request.app[TOKENS]
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise web.HTTPUnauthorized(
            text=ErrorOut(error="missing bearer token").model_dump_json(),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="canaryd"'},
        )
    match = None
    # aiohttp hands undecodable header bytes over as lone surrogates: keep them, compare as bytes
    offered = presented.encode("utf-8", "surrogatepass")
    for token in tokens:  # compare against every token, constant time each
        if hmac.compare_digest(token.secret.encode(), offered):
            match = token
    if match is None:
        raise web.HTTPUnauthorized(
            text=ErrorOut(error="invalid bearer token").model_dump_json(),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="canaryd", error="invalid_token"'},
        )
    if scope not in match.scopes:
        raise web.HTTPForbidden(
            text=ErrorOut(error=f"token lacks the {scope!r} scope").model_dump_json(),
            content_type="application/json",
        )
