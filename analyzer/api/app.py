"""The HTTP API (DESIGN.md §5) on aiohttp: the routes, and the config and health handlers
(the canaries' are in :mod:`analyzer.api.canaries`).

Errors are translated in one middleware (:mod:`analyzer.api.middleware`); mutating endpoints
need a bearer token with the endpoint's scope, reads one with ``read`` unless reads are public
(:mod:`analyzer.api.auth`); health, metrics and this document are always open.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from analyzer.api.auth import PUBLIC_READS, TOKENS, require_read, require_scope
from analyzer.api.canaries import (
    action_handler,
    get_canary,
    list_canaries,
    list_ticks,
    register,
    verdict,
)
from analyzer.api.context import CTX, ApiContext
from analyzer.api.middleware import errors_middleware, field_of, read_json, reply
from analyzer.api.openapi import openapi_document
from analyzer.api.policy import ApiPolicy, check_config_size
from analyzer.api.schemas import ConfigOut, ValidateOut
from analyzer.configs.judgeconfig import JudgeConfig, config_hash, parse_config
from analyzer.configs.overlap import overlap_warnings
from analyzer.errors import InvalidInput, NotFound
from analyzer.model import Action

__all__ = ["build_app"]

log = structlog.get_logger("canaryd.api")


# -- configs ----------------------------------------------------------------------------------
async def list_configs(request: web.Request) -> web.Response:
    """GET /api/v1/configs."""
    require_read(request)
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
    require_read(request)
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
    config = _parse_body_config(await read_json(request), request.app[CTX].policy)
    if config.name != name:
        raise InvalidInput("name", f"config is named {config.name!r} but the path says {name!r}")
    version = await request.app[CTX].fleet.catalog.put(config)
    return reply(
        ConfigOut(
            name=version.name, hash=version.hash, created_at=version.created_at, body=version.body
        )
    )


def _parse_body_config(body: Any, policy: ApiPolicy) -> JudgeConfig:
    """A config from a request body (within the policy's size, JSON types strictly);
    InvalidInput names the bad field, not just "body"."""
    check_config_size(body, policy)
    try:
        return parse_config(body, source="body", strict=True)
    except InvalidInput as exc:
        field = field_of(exc.message.splitlines()[0]) or exc.field
        raise InvalidInput(field, exc.message) from None


async def validate_config(request: web.Request) -> web.Response:
    """POST /api/v1/configs/validate: 200 with valid true/false and the errors."""
    body = await read_json(request)
    try:
        check_config_size(body, request.app[CTX].policy)
        config = parse_config(body, source="body", strict=True)
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
    app[PUBLIC_READS] = ctx.policy.public_reads
    r = app.router
    r.add_post("/api/v1/canaries", register)
    r.add_get("/api/v1/canaries", list_canaries)
    r.add_get("/api/v1/canaries/{id}", get_canary)
    r.add_get("/api/v1/canaries/{id}/ticks", list_ticks)
    r.add_get("/api/v1/canaries/{id}/verdict", verdict)
    for action in (Action.ABORT, Action.PROMOTE, Action.PAUSE, Action.RESUME):
        r.add_post(f"/api/v1/canaries/{{id}}/{action}", action_handler(action))
    r.add_get("/api/v1/configs", list_configs)
    r.add_post("/api/v1/configs/validate", validate_config)
    r.add_get("/api/v1/configs/{name}", get_config)
    r.add_put("/api/v1/configs/{name}", put_config)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics)
    r.add_get("/openapi.json", openapi)
    return app
