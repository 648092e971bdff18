"""The OpenAPI 3.1 document of the API, generated from the pydantic schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

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
    400: "Body is not JSON",
    401: "No or invalid bearer token",
    403: "Token lacks the scope",
    404: "Not found",
    409: "Conflicts with the canary's phase",
    413: "Body too large",
    422: "Invalid input; `field` names it",
    503: "Not taking registrations",
}


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


def _param(name: str, where: str = "path") -> dict[str, Any]:
    required = where == "path"
    return {"name": name, "in": where, "required": required, "schema": {"type": "string"}}


def _array(model: type[BaseModel]) -> dict[str, Any]:
    return {"type": "array", "items": _ref(model)}


def _canary_paths() -> dict[str, Any]:
    cid = [_param("id")]
    mutating = (400, 401, 403, 404, 409, 413, 422)
    paths: dict[str, Any] = {
        "/api/v1/canaries": {
            "post": _op(
                "Register a canary",
                _ref(CanaryOut),
                ok=201,
                body=_ref(RegisterRequest),
                errors=(400, 401, 403, 413, 422, 503),
                secured=True,
            ),
            "get": _op(
                "List canaries", _array(CanaryOut), errors=(422,), params=[_param("phase", "query")]
            ),
        },
        "/api/v1/canaries/{id}": {
            "get": _op("A canary with its history", _ref(CanaryOut), errors=(404,), params=cid)
        },
        "/api/v1/canaries/{id}/verdict": {
            "get": _op("A canary's verdict", _ref(VerdictOut), errors=(404,), params=cid)
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
        "/api/v1/configs": {"get": _op("List judge configs", _array(ConfigOut))},
        "/api/v1/configs/validate": {
            "post": _op(
                "Validate a judge config", _ref(ValidateOut), body=config, errors=(400, 413)
            )
        },
        "/api/v1/configs/{name}": {
            "get": _op("A judge config", _ref(ConfigOut), errors=(404,), params=name),
            "put": _op(
                "Store a judge config version",
                _ref(ConfigOut),
                body=config,
                errors=(400, 401, 403, 413, 422),
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
