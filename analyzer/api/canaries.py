"""The canary endpoints: register (once per ``Idempotency-Key``), list (paged), one canary with
its newest ticks, the rest of its ticks (paged), its verdict, and the manual actions.

Responses are bounded: a list page holds at most :data:`MAX_LIMIT` canaries and no metadata; one
canary shows its newest :data:`TICKS_SHOWN` ticks and links to the others; a next page is named
by a ``Link: <...>; rel="next"`` header (the list) or a ``next`` field (ticks), never dropped.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from analyzer.api.auth import require_read, require_scope
from analyzer.api.context import CTX
from analyzer.api.history import DecisionOut, DeliveryOut, TickOut, TicksOut
from analyzer.api.middleware import Handler, error_reply, read_json, reply
from analyzer.api.registration import build_registration, registration_warnings
from analyzer.api.schemas import (
    ActionRequest,
    CanaryOut,
    RegisterRequest,
    VerdictOut,
    parse_request,
)
from analyzer.errors import Conflict, InvalidInput
from analyzer.model import Action, Phase

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "TICKS_SHOWN",
    "action_handler",
    "get_canary",
    "list_canaries",
    "list_ticks",
    "register",
    "verdict",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
TICKS_SHOWN = 50
"""Newest ticks in one canary's answer; the rest by ``GET /api/v1/canaries/{id}/ticks``."""
_KEY_HEADER = "Idempotency-Key"


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(name, f"an integer from {low} to {high}, got {raw[:40]!r}")
    return int(raw)


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(_KEY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all("!" <= ch <= "~" for ch in key):
        raise InvalidInput(_KEY_HEADER, "1 to 255 visible ASCII characters")
    return key


def _body_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def register(request: web.Request) -> web.Response:
    """POST /api/v1/canaries: 201 and the new canary; with an ``Idempotency-Key`` already used
    for the same body 200 and that canary as it is now, for another body 409."""
    ctx = request.app[CTX]
    require_scope(request, "register")
    if not ctx.fleet.accepting:
        return error_reply(503, "shutting down; not taking registrations")
    body = await read_json(request)
    key, digest = _idempotency_key(request), _body_hash(body)
    if key is not None:
        earlier = await ctx.fleet.store.get_idempotency(key)
        if earlier is not None and earlier.body_hash != digest:
            raise Conflict(f"{_KEY_HEADER} was already used with a different body")
        if earlier is not None:
            return reply(CanaryOut.of(await ctx.fleet.stored(earlier.canary_id)))
    spec = parse_request(RegisterRequest, body)
    reg = await build_registration(
        spec, body, ctx.fleet.catalog, ctx.allowed_hosts, ctx.scrape_mode, policy=ctx.policy
    )
    canary, created = await ctx.fleet.register_once(reg, key, digest)
    if not created:  # the same key and body raced this request and won
        return reply(CanaryOut.of(canary))
    out = CanaryOut.of(canary)
    out.warnings = registration_warnings(reg, ctx.fleet.catalog)
    return reply(out, status=201)


async def list_canaries(request: web.Request) -> web.Response:
    """GET /api/v1/canaries[?phase=&limit=&cursor=]: one page, newest first, no metadata."""
    require_read(request)
    raw = request.query.get("phase")
    try:
        phase = Phase(raw) if raw else None
    except ValueError:
        raise InvalidInput(
            "phase", f"unknown phase {raw!r}; one of {[str(p) for p in Phase]}"
        ) from None
    limit = _int_query(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    cursor = request.query.get("cursor") or None
    page = await request.app[CTX].fleet.store.page_canaries(phase, limit=limit, cursor=cursor)
    response = reply(
        [CanaryOut.of(c, metadata=False).model_dump(mode="json") for c in page.canaries]
    )
    if page.cursor is not None:
        query = {"limit": str(limit), "cursor": page.cursor} | ({"phase": raw} if raw else {})
        response.headers["Link"] = f'</api/v1/canaries?{urlencode(query)}>; rel="next"'
    return response


def _ticks_link(canary_id: str, after: int, limit: int) -> str:
    return f"/api/v1/canaries/{canary_id}/ticks?{urlencode({'after': after, 'limit': limit})}"


async def get_canary(request: web.Request) -> web.Response:
    """GET /api/v1/canaries/{id}: state, metadata, the newest ticks (``ticks_next`` links to
    all of them when older ones are not shown), decisions and deliveries."""
    require_read(request)
    fleet = request.app[CTX].fleet
    canary = await fleet.stored(request.match_info["id"])
    out = CanaryOut.of(canary)
    ticks = await fleet.store.list_ticks(canary.id, limit=TICKS_SHOWN + 1)
    if len(ticks) > TICKS_SHOWN:
        ticks = ticks[1:]
        out.ticks_next = _ticks_link(canary.id, 0, DEFAULT_LIMIT)
    out.ticks = [TickOut.of(t) for t in ticks]
    out.decisions = [DecisionOut.of(d) for d in await fleet.store.list_decisions(canary.id)]
    out.deliveries = [DeliveryOut.of(d) for d in await fleet.store.list_deliveries(canary.id)]
    return reply(out)


async def list_ticks(request: web.Request) -> web.Response:
    """GET /api/v1/canaries/{id}/ticks[?after=SEQ&limit=N]: ticks after ``SEQ``, oldest first;
    ``next`` names the page after this one (null at the end)."""
    require_read(request)
    fleet = request.app[CTX].fleet
    canary = await fleet.get(request.match_info["id"])
    after = _int_query(request, "after", 0, 0, 2**62)
    limit = _int_query(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    ticks = await fleet.store.ticks_after(canary.id, after, limit + 1)
    shown = ticks[:limit]
    more = len(ticks) > limit
    link = _ticks_link(canary.id, shown[-1].seq, limit) if more else None
    return reply(TicksOut(ticks=[TickOut.of(t) for t in shown], next=link))


_VERDICTS = {
    Phase.PROMOTED: "pass",
    Phase.ROLLED_BACK: "fail",
    Phase.PAUSED: "inconclusive",
    Phase.ABORTED: "none",
    Phase.FAILED: "none",
    Phase.PENDING: "running",
    Phase.WARMUP: "running",
    Phase.RUNNING: "running",
}


async def verdict(request: web.Request) -> web.Response:
    """GET /api/v1/canaries/{id}/verdict."""
    require_read(request)
    canary = await request.app[CTX].fleet.get(request.match_info["id"])
    out = VerdictOut.model_validate(
        {
            "verdict": _VERDICTS[canary.phase],
            "score": canary.last_score,
            "phase": canary.phase,
            "reason": canary.last_reason,
        }
    )
    return reply(out)


def action_handler(action: Action) -> Handler:
    """The handler of POST /api/v1/canaries/{id}/<action> (answers without metadata)."""

    async def handle(request: web.Request) -> web.Response:
        require_scope(request, "act")
        body = parse_request(ActionRequest, await read_json(request))
        reason = body.reason or f"{action} requested over the API"
        fleet = request.app[CTX].fleet
        canary = await fleet.act(request.match_info["id"], action, reason)
        return reply(CanaryOut.of(canary, metadata=False))

    handle.__doc__ = f"POST /api/v1/canaries/{{id}}/{action}."
    return handle
