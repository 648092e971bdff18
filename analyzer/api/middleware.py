"""The API's one error seam and its JSON in and out.

:func:`errors_middleware` translates every error into a JSON body with the right status:
InvalidInput and schema errors → 422 naming the field, undecodable JSON → 400, oversize bodies →
413, NotFound → 404, Conflict → 409, anything unexpected → 500 with a generic message (details
go to the log, never to the client). :func:`read_json` decodes a body strictly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from analyzer.api.bodies import MAX_DEPTH, check_content_type, nesting_depth
from analyzer.api.schemas import (
    ErrorOut,
)
from analyzer.configs.judgeconfig import validation_message
from analyzer.errors import Conflict, InvalidInput, NotFound, StoreBusy

log = structlog.get_logger("canaryd.api")

__all__ = ["Handler", "error_reply", "errors_middleware", "field_of", "read_json", "reply"]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reply(model: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> web.Response:
    text = model.model_dump_json() if isinstance(model, BaseModel) else json.dumps(model)
    return web.json_response(text=text, status=status)


def error_reply(
    status: int, error: str, field: str | None = None, detail: list[str] | None = None
) -> web.Response:
    return reply(ErrorOut(error=error, field=field, detail=detail or []), status)


_FIELD_PATH = re.compile(r"[A-Za-z_$][\w.$-]*")


def field_of(line: str) -> str | None:
    """The dotted path a validation line starts with (``stages.0.weight: ...``), if any."""
    head, sep, _ = line.partition(":")
    return head if sep and _FIELD_PATH.fullmatch(head) else None


STORE_RETRY_AFTER_S = 5
"""Retry-After of a 503 for a busy store: about one busy timeout."""


def _caller_error(exc: InvalidInput | NotFound | Conflict | StoreBusy) -> web.Response:
    """The answer to an error the caller can act on."""
    match exc:
        case InvalidInput():
            return error_reply(422, exc.message, exc.field, [str(exc)])
        case NotFound():
            return error_reply(404, str(exc))
        case Conflict():
            return error_reply(409, str(exc))
        case StoreBusy():  # another process holds the database: nothing changed, try again
            busy = error_reply(503, "the store is busy (another process holds its lock); retry")
            busy.headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
            return busy


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate every error into a JSON error body with the right status."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 413:
            return error_reply(413, "request body too large")
        if exc.status >= 400 and exc.content_type != "application/json":
            return error_reply(exc.status, exc.reason)
        raise
    except ValidationError as exc:
        lines = validation_message(exc).splitlines()
        field = field_of(lines[0]) if lines else None
        return error_reply(422, "invalid request", field, lines)
    except (InvalidInput, NotFound, Conflict, StoreBusy) as exc:
        return _caller_error(exc)
    except Exception:  # the last line of defence: log it, answer 500 without details
        log.exception("api.failed", path=request.path, method=request.method)
        return error_reply(500, "internal error")


def _not_json(constant: str) -> Any:
    msg = f"{constant} is not a JSON value"
    raise ValueError(msg)


def _bad_json(why: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=ErrorOut(error=f"body is not valid JSON: {why}").model_dump_json(),
        content_type="application/json",
    )


async def read_json(request: web.Request) -> Any:
    """The decoded JSON body of a request that says it is JSON (else 415), nested at most
    :data:`~analyzer.api.bodies.MAX_DEPTH` deep (else 400). Python's extensions are refused
    (NaN and ±Infinity, lone UTF-16 surrogates in strings): they would slip past the schemas
    into the store and the queries."""
    raw = await request.read()
    if not raw:
        return {}
    check_content_type(request)  # 415 unless the body says it is JSON
    if nesting_depth(raw) > MAX_DEPTH:
        raise _bad_json(f"nested deeper than {MAX_DEPTH} arrays and objects")
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _bad_json(str(exc)) from None
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise _bad_json("a string holds a lone UTF-16 surrogate") from None
    return body
