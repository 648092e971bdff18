"""The OpenAPI 3.1 document of the API, generated from the pydantic schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from analyzer.api.canaries import DEFAULT_LIMIT, MAX_LIMIT
from analyzer.api.history import TicksOut
from analyzer.api.schemas import (
    ActionRequest,
    CanaryOut,
    ConfigOut,
    ErrorOut,
    RegisterRequest,
    ValidateOut,
    VerdictOut,
)
from analyzer.configs.judgeconfig import JudgeConfig

__all__ = ["openapi_document"]

_MODELS: list[type[BaseModel]] = [
    ActionRequest,
    CanaryOut,
    ConfigOut,
    ErrorOut,
    RegisterRequest,
    TicksOut,
    ValidateOut,
    VerdictOut,
    JudgeConfig,
]
_REF = "#/components/schemas/{model}"
_JSON = "application/json"


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": _REF.format(model=model.__name__)}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {_JSON: {"schema": schema}}}


_ERROR_TEXT = {
    400: "Body is not JSON, or nested too deep",
    401: "No or invalid bearer token",
    403: "Token lacks the scope",
    404: "Not found",
    409: "Conflicts with the canary's phase, or an Idempotency-Key used with another body",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Invalid input; `field` names it",
    503: "Not taking registrations",
}
_READ = (401, 403)
"""A read without a token, when tokens are configured and reads are not public."""


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": _ERROR_TEXT[c], **_content(_ref(ErrorOut))} for c in codes}


def _op(
    summary: str,
    schema: dict[str, Any] | None,
    *,
    ok: int = 200,
    body: dict[str, Any] | None = None,
    errors: tuple[int, ...] = (),
    secured: bool = False,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    ok_response = {"description": "OK", **(_content(schema) if schema else {})}
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {str(ok): ok_response} | _errors(*errors),
    }
    if body is not None:
        op["requestBody"] = {"required": True, **_content(body)}
    if secured:
        op["security"] = [{"bearer": []}]
    if params:
        op["parameters"] = params
    return op


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    required = where == "path"
    return {
        "name": name,
        "in": where,
        "required": required,
        "schema": schema or {"type": "string"},
    }


def _page(default: int = DEFAULT_LIMIT) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default}


_IDEMPOTENCY_KEY = _param(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
)
_LINK = {
    "Link": {
        "description": 'the next page: `</api/v1/canaries?...&cursor=...>; rel="next"`',
        "schema": {"type": "string"},
    }
}


def _array(model: type[BaseModel]) -> dict[str, Any]:
    return {"type": "array", "items": _ref(model)}


def _register_op() -> dict[str, Any]:
    op = _op(
        "Register a canary (once per Idempotency-Key)",
        _ref(CanaryOut),
        ok=201,
        body=_ref(RegisterRequest),
        errors=(400, 401, 403, 409, 413, 415, 422, 503),
        secured=True,
        params=[_IDEMPOTENCY_KEY],
    )
    op["responses"]["200"] = {
        "description": "A retry with the same Idempotency-Key and body: that canary now",
        **_content(_ref(CanaryOut)),
    }
    return op


def _list_op() -> dict[str, Any]:
    params = [
        _param("phase", "query"),
        _param("limit", "query", _page()),
        _param("cursor", "query", {"type": "string", "maxLength": 200}),
    ]
    op = _op(
        "List canaries, newest first, one page (without metadata)",
        _array(CanaryOut),
        errors=(*_READ, 422),
        secured=True,
        params=params,
    )
    op["responses"]["200"]["headers"] = _LINK
    return op


def _canary_paths() -> dict[str, Any]:
    cid = [_param("id")]
    mutating = (400, 401, 403, 404, 409, 413, 415, 422)
    ticks = [
        *cid,
        _param("after", "query", {"type": "integer", "minimum": 0, "maximum": 2**62}),
        _param("limit", "query", _page()),
    ]
    paths: dict[str, Any] = {
        "/api/v1/canaries": {"post": _register_op(), "get": _list_op()},
        "/api/v1/canaries/{id}": {
            "get": _op(
                "A canary with its newest ticks",
                _ref(CanaryOut),
                errors=(*_READ, 404),
                secured=True,
                params=cid,
            )
        },
        "/api/v1/canaries/{id}/ticks": {
            "get": _op(
                "A canary's ticks after a sequence number, oldest first",
                _ref(TicksOut),
                errors=(*_READ, 404, 422),
                secured=True,
                params=ticks,
            )
        },
        "/api/v1/canaries/{id}/verdict": {
            "get": _op(
                "A canary's verdict",
                _ref(VerdictOut),
                errors=(*_READ, 404),
                secured=True,
                params=cid,
            )
        },
    }
    for action in ("abort", "promote", "pause", "resume"):
        op = _op(
            f"{action.capitalize()} a canary",
            _ref(CanaryOut),
            body=_ref(ActionRequest),
            errors=mutating,
            secured=True,
            params=cid,
        )
        paths[f"/api/v1/canaries/{{id}}/{action}"] = {"post": op}
    return paths


def _config_paths() -> dict[str, Any]:
    name = [_param("name")]
    config = _ref(JudgeConfig)
    text = {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}
    return {
        "/api/v1/configs": {
            "get": _op("List judge configs", _array(ConfigOut), errors=_READ, secured=True)
        },
        "/api/v1/configs/validate": {
            "post": _op(
                "Validate a judge config", _ref(ValidateOut), body=config, errors=(400, 413, 415)
            )
        },
        "/api/v1/configs/{name}": {
            "get": _op(
                "A judge config",
                _ref(ConfigOut),
                errors=(*_READ, 404),
                secured=True,
                params=name,
            ),
            "put": _op(
                "Store a judge config version",
                _ref(ConfigOut),
                body=config,
                errors=(400, 401, 403, 413, 415, 422),
                secured=True,
                params=name,
            ),
        },
        "/healthz": {"get": _op("Liveness", {"type": "object"})},
        "/readyz": {"get": _op("Readiness", {"type": "object"}, errors=(503,))},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": text}},
        "/openapi.json": {"get": _op("This document (OpenAPI 3.1)", {"type": "object"})},
    }


def _paths() -> dict[str, Any]:
    return _canary_paths() | _config_paths()


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once)."""
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "canaryd", "version": "1"},
        "paths": _paths(),
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
