"""The HTTP API (DESIGN.md §5) on aiohttp: routes, auth, error mapping, OpenAPI.

Errors are translated in one middleware: InvalidInput and schema errors → 422 naming the field,
undecodable JSON → 400, oversize bodies → 413, NotFound → 404, Conflict → 409, and anything
unexpected → 500 with a generic message (details go to the log, never to the client). Mutating
endpoints need a bearer token with the endpoint's scope, compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from analyzer.api.openapi import openapi_document
from analyzer.api.registration import build_registration
from analyzer.api.schemas import (
    ActionRequest,
    CanaryOut,
    ConfigOut,
    DecisionOut,
    DeliveryOut,
    ErrorOut,
    RegisterRequest,
    TickOut,
    ValidateOut,
    VerdictOut,
)
from analyzer.errors import Conflict, InvalidInput, NotFound
from analyzer.fleet import Fleet
from analyzer.judgeconfig import JudgeConfig, config_hash, parse_config, validation_message
from analyzer.model import Action, Phase
from analyzer.telemetry import Telemetry

__all__ = ["ApiContext", "Token", "build_app", "parse_tokens"]

log = structlog.get_logger("canaryd.api")

SCOPES = frozenset({"register", "act", "config"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
        tokens.append(Token(secret=secret, scopes=scopes))
    return tokens


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


def _json(model: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> web.Response:
    text = model.model_dump_json() if isinstance(model, BaseModel) else json.dumps(model)
    return web.json_response(text=text, status=status)


def _error(
    status: int, error: str, field: str | None = None, detail: list[str] | None = None
) -> web.Response:
    return _json(ErrorOut(error=error, field=field, detail=detail or []), status)


_FIELD_PATH = re.compile(r"[A-Za-z_$][\w.$-]*")


def _field_of(line: str) -> str | None:
    """The dotted path a validation line starts with (``stages.0.weight: ...``), if any."""
    head, sep, _ = line.partition(":")
    return head if sep and _FIELD_PATH.fullmatch(head) else None


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate every error into a JSON error body with the right status."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 413:
            return _error(413, "request body too large")
        if exc.status >= 400 and exc.content_type != "application/json":
            return _error(exc.status, exc.reason)
        raise
    except ValidationError as exc:
        lines = validation_message(exc).splitlines()
        field = _field_of(lines[0]) if lines else None
        return _error(422, "invalid request", field, lines)
    except InvalidInput as exc:
        return _error(422, exc.message, exc.field, [str(exc)])
    except NotFound as exc:
        return _error(404, str(exc))
    except Conflict as exc:
        return _error(409, str(exc))
    except Exception:  # the last line of defence: log it, answer 500 without details
        log.exception("api.failed", path=request.path, method=request.method)
        return _error(500, "internal error")


def _require(request: web.Request, scope: str) -> None:
    tokens = request.app[CTX].tokens
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


def _not_json(constant: str) -> Any:
    msg = f"{constant} is not a JSON value"
    raise ValueError(msg)


def _bad_json(why: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=ErrorOut(error=f"body is not valid JSON: {why}").model_dump_json(),
        content_type="application/json",
    )


async def _body(request: web.Request) -> Any:
    """The decoded JSON body. Python's extensions are refused (NaN and ±Infinity, lone UTF-16
    surrogates in strings): they would slip past the schemas into the store and the queries."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _bad_json(str(exc)) from None
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise _bad_json("a string holds a lone UTF-16 surrogate") from None
    return body


# -- canaries ---------------------------------------------------------------------------------
async def register(request: web.Request) -> web.Response:
    """POST /api/v1/canaries."""
    ctx = request.app[CTX]
    _require(request, "register")
    if not ctx.fleet.accepting:
        return _error(503, "shutting down; not taking registrations")
    body = await _body(request)
    spec = RegisterRequest.model_validate(body)
    reg = await build_registration(
        spec, body, ctx.fleet.catalog, ctx.allowed_hosts, ctx.scrape_mode
    )
    canary = await ctx.fleet.register(reg)
    return _json(CanaryOut.of(canary), status=201)


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
    return _json([CanaryOut.of(c).model_dump(mode="json") for c in canaries])


async def get_canary(request: web.Request) -> web.Response:
    """GET /api/v1/canaries/{id}: state, every tick, decisions and deliveries."""
    fleet = request.app[CTX].fleet
    canary = await fleet.get(request.match_info["id"])
    out = CanaryOut.of(canary)
    out.ticks = [TickOut.of(t) for t in await fleet.store.list_ticks(canary.id)]
    out.decisions = [DecisionOut.of(d) for d in await fleet.store.list_decisions(canary.id)]
    out.deliveries = [DeliveryOut.of(d) for d in await fleet.store.list_deliveries(canary.id)]
    return _json(out)


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
        {"verdict": _VERDICTS[canary.phase], "score": canary.last_score,
         "phase": canary.phase, "reason": canary.last_reason}
    )  # fmt: skip
    return _json(out)


def _action(action: Action) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        _require(request, "act")
        body = ActionRequest.model_validate(await _body(request))
        reason = body.reason or f"{action} requested over the API"
        fleet = request.app[CTX].fleet
        canary = await fleet.act(request.match_info["id"], action, reason)
        return _json(CanaryOut.of(canary))

    handle.__doc__ = f"POST /api/v1/canaries/{{id}}/{action}."
    return handle


# -- configs ----------------------------------------------------------------------------------
async def list_configs(request: web.Request) -> web.Response:
    """GET /api/v1/configs."""
    versions = await request.app[CTX].fleet.catalog.list()
    return _json(
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
    return _json(
        ConfigOut(
            name=version.name, hash=version.hash, created_at=version.created_at, body=version.body
        )
    )


async def put_config(request: web.Request) -> web.Response:
    """PUT /api/v1/configs/{name}: store a new version (its name must match the path)."""
    _require(request, "config")
    name = request.match_info["name"]
    config = _parse_body_config(await _body(request))
    if config.name != name:
        raise InvalidInput("name", f"config is named {config.name!r} but the path says {name!r}")
    version = await request.app[CTX].fleet.catalog.put(config)
    return _json(
        ConfigOut(
            name=version.name, hash=version.hash, created_at=version.created_at, body=version.body
        )
    )


def _parse_body_config(body: Any) -> JudgeConfig:
    """A config from a request body; InvalidInput names the bad field, not just "body"."""
    try:
        return parse_config(body, source="body")
    except InvalidInput as exc:
        field = _field_of(exc.message.splitlines()[0]) or exc.field
        raise InvalidInput(field, exc.message) from None


async def validate_config(request: web.Request) -> web.Response:
    """POST /api/v1/configs/validate: 200 with valid true/false and the errors."""
    try:
        config = parse_config(await _body(request), source="body")
    except InvalidInput as exc:
        return _json(ValidateOut(valid=False, errors=exc.message.splitlines()))
    return _json(ValidateOut(valid=True, hash=config_hash(config)))


# -- health -----------------------------------------------------------------------------------
async def healthz(_request: web.Request) -> web.Response:
    """GET /healthz: the process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: stored canaries are resumed and registrations are taken."""
    ctx = request.app[CTX]
    if not ctx.ready or not ctx.fleet.accepting:
        return web.json_response({"status": "not ready"}, status=503)
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
