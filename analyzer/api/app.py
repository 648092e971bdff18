"""The HTTP API (DESIGN.md §5) on aiohttp: the routes and their handlers.

Errors are translated in one middleware (:mod:`analyzer.api.middleware`); mutating endpoints
need a bearer token with the endpoint's scope (:mod:`analyzer.api.auth`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from analyzer.api.auth import TOKENS, Token, require_scope
from analyzer.api.middleware import (
    Handler,
    error_reply,
    errors_middleware,
    field_of,
    read_json,
    reply,
)
from analyzer.api.openapi import openapi_document
from analyzer.api.registration import build_registration, registration_warnings
from analyzer.api.schemas import (
    ActionRequest,
    CanaryOut,
    ConfigOut,
    DecisionOut,
    DeliveryOut,
    RegisterRequest,
    TickOut,
    ValidateOut,
    VerdictOut,
)
from analyzer.configs.judgeconfig import JudgeConfig, config_hash, parse_config
from analyzer.configs.overlap import overlap_warnings
from analyzer.errors import InvalidInput, NotFound
from analyzer.model import Action, Phase
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet

__all__ = ["ApiContext", "build_app"]

log = structlog.get_logger("canaryd.api")


@dataclass(slots=True, kw_only=True)
class ApiContext:
    """What the handlers need."""

    fleet: Fleet
    telemetry: Telemetry
    tokens: list[Token]
    allowed_hosts: list[str]
    scrape_mode: bool
    ready: bool = False


CTX = web.AppKey("ctx", ApiContext)


# -- canaries ---------------------------------------------------------------------------------
async def register(request: web.Request) -> web.Response:
    """POST /api/v1/canaries."""
    ctx = request.app[CTX]
    require_scope(request, "register")
    if not ctx.fleet.accepting:
        return error_reply(503, "shutting down; not taking registrations")
    body = await read_json(request)
    spec = RegisterRequest.model_validate(body)
    reg = await build_registration(
        spec, body, ctx.fleet.catalog, ctx.allowed_hosts, ctx.scrape_mode
    )
    canary = await ctx.fleet.register(reg)
    out = CanaryOut.of(canary)
    out.warnings = registration_warnings(reg, ctx.fleet.catalog)
    return reply(out, status=201)


async def list_canaries(request: web.Request) -> web.Response:
    """GET /api/v1/canaries[?phase=]."""
    raw = request.query.get("phase")
    try:
        phase = Phase(raw) if raw else None
    except ValueError:
        raise InvalidInput(
            "phase", f"unknown phase {raw!r}; one of {[str(p) for p in Phase]}"
        ) from None
    canaries = await request.app[CTX].fleet.store.list_canaries(phase)
    return reply([CanaryOut.of(c).model_dump(mode="json") for c in canaries])


async def get_canary(request: web.Request) -> web.Response:
    """GET /api/v1/canaries/{id}: state, every tick, decisions and deliveries."""
    fleet = request.app[CTX].fleet
    canary = await fleet.get(request.match_info["id"])
    out = CanaryOut.of(canary)
    out.ticks = [TickOut.of(t) for t in await fleet.store.list_ticks(canary.id)]
    out.decisions = [DecisionOut.of(d) for d in await fleet.store.list_decisions(canary.id)]
    out.deliveries = [DeliveryOut.of(d) for d in await fleet.store.list_deliveries(canary.id)]
    return reply(out)


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


def _action(action: Action) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        require_scope(request, "act")
        body = ActionRequest.model_validate(await read_json(request))
        reason = body.reason or f"{action} requested over the API"
        fleet = request.app[CTX].fleet
        canary = await fleet.act(request.match_info["id"], action, reason)
        return reply(CanaryOut.of(canary))

    handle.__doc__ = f"POST /api/v1/canaries/{{id}}/{action}."
    return handle


# -- configs ----------------------------------------------------------------------------------
async def list_configs(request: web.Request) -> web.Response:
    """GET /api/v1/configs."""
    versions = await request.app[CTX].fleet.catalog.list()
    return reply(
        [
            ConfigOut(name=v.name, hash=v.hash, created_at=v.created_at, body=v.body).model_dump(
                mode="json"
            )
            for v in versions
        ]
    )


async def get_config(request: web.Request) -> web.Response:
    """GET /api/v1/configs/{name}."""
    store = request.app[CTX].fleet.store
    version = await store.get_config(request.match_info["name"])
    if version is None:
        raise NotFound(f"no config named {request.match_info['name']!r}")
    return reply(
        ConfigOut(
            name=version.name, hash=version.hash, created_at=version.created_at, body=version.body
        )
    )


async def put_config(request: web.Request) -> web.Response:
    """PUT /api/v1/configs/{name}: store a new version (its name must match the path)."""
    require_scope(request, "config")
    name = request.match_info["name"]
    config = _parse_body_config(await read_json(request))
    if config.name != name:
        raise InvalidInput("name", f"config is named {config.name!r} but the path says {name!r}")
    version = await request.app[CTX].fleet.catalog.put(config)
    return reply(
        ConfigOut(
            name=version.name, hash=version.hash, created_at=version.created_at, body=version.body
        )
    )


def _parse_body_config(body: Any) -> JudgeConfig:
    """A config from a request body; InvalidInput names the bad field, not just "body"."""
    try:
        return parse_config(body, source="body")
    except InvalidInput as exc:
        field = field_of(exc.message.splitlines()[0]) or exc.field
        raise InvalidInput(field, exc.message) from None


async def validate_config(request: web.Request) -> web.Response:
    """POST /api/v1/configs/validate: 200 with valid true/false and the errors."""
    try:
        config = parse_config(await read_json(request), source="body")
    except InvalidInput as exc:
        return reply(ValidateOut(valid=False, errors=exc.message.splitlines()))
    warnings = overlap_warnings(config)
    return reply(ValidateOut(valid=True, hash=config_hash(config), warnings=warnings))


# -- health -----------------------------------------------------------------------------------
async def healthz(_request: web.Request) -> web.Response:
    """GET /healthz: the process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: stored canaries are resumed and registrations are taken."""
    ctx = request.app[CTX]
    if not ctx.ready or not ctx.fleet.accepting:
        return web.json_response({"status": "not ready"}, status=503)
    if not await ctx.fleet.store.ready():
        return web.json_response({"status": "store busy"}, status=503)
    return web.json_response({"status": "ready", "canaries": len(ctx.fleet.canaries)})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the daemon's own Prometheus exposition."""
    body = request.app[CTX].telemetry.exposition()
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


async def openapi(_request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(openapi_document())


def build_app(ctx: ApiContext, *, max_body_bytes: int = 1_048_576) -> web.Application:
    """The aiohttp application with every route."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=max_body_bytes)
    app[CTX] = ctx
    app[TOKENS] = ctx.tokens
    r = app.router
    r.add_post("/api/v1/canaries", register)
    r.add_get("/api/v1/canaries", list_canaries)
    r.add_get("/api/v1/canaries/{id}", get_canary)
    r.add_get("/api/v1/canaries/{id}/verdict", verdict)
    for action in (Action.ABORT, Action.PROMOTE, Action.PAUSE, Action.RESUME):
        r.add_post(f"/api/v1/canaries/{{id}}/{action}", _action(action))
    r.add_get("/api/v1/configs", list_configs)
    r.add_post("/api/v1/configs/validate", validate_config)
    r.add_get("/api/v1/configs/{name}", get_config)
    r.add_put("/api/v1/configs/{name}", put_config)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics)
    r.add_get("/openapi.json", openapi)
    return app
