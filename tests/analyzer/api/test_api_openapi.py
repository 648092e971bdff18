"""The HTTP API's /openapi.json: every route of the app in OpenAPI 3.1 shape.

The API on loopback through aiohttp's TestClient, wired as Daemon.build wires it (the ``api``
fixture, :mod:`support.apiserver`): a real SQLite store, catalog and fleet, and a Scheduler that
the tests wake by hand."""

from __future__ import annotations

import json
from typing import Any

from support.apiserver import Api

OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json"}
"""Paths anyone may read, token or not."""


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


class TestOpenApi:
    """/openapi.json describes every route of the app in OpenAPI 3.1 shape."""

    async def _document(self, api: Api) -> dict[str, Any]:
        response = await api.client.get("/openapi.json")
        assert response.status == 200
        return await response.json()

    async def test_shape(self, api: Api) -> None:
        """openapi 3.1.x, info, paths, components; every $ref resolves."""
        doc = await self._document(api)
        assert doc["openapi"].startswith("3.1.")
        assert {"title", "version"} <= doc["info"].keys()
        schemas = doc["components"]["schemas"]
        assert {"RegisterRequest", "CanaryOut", "ErrorOut", "JudgeConfig"} <= schemas.keys()
        for ref in _refs(doc):
            assert ref.startswith("#/components/schemas/")
            assert ref.removeprefix("#/components/schemas/") in schemas, ref
        json.dumps(doc, allow_nan=False)

    async def test_every_route_and_method(self, api: Api) -> None:
        """Each route of the app is in paths with each of its methods, and nothing else is."""
        doc = await self._document(api)
        routes: dict[str, set[str]] = {}
        for route in api.app.router.routes():
            if route.method == "HEAD":
                continue
            assert route.resource is not None
            routes.setdefault(route.resource.canonical, set()).add(route.method.lower())
        documented = {
            path: {m for m in item if m in {"get", "put", "post", "delete", "patch"}}
            for path, item in doc["paths"].items()
        }
        assert documented == routes

    async def test_operations(self, api: Api) -> None:
        """Each operation: described responses, its path parameters, bearer auth unless it is
        validate or open to anyone (health, metrics, this document)."""
        doc = await self._document(api)
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        for path, item in doc["paths"].items():
            for method, op in item.items():
                assert op["responses"], (path, method)
                assert any(code.startswith("2") for code in op["responses"])
                assert all("description" in r for r in op["responses"].values())
                declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
                wanted = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
                assert declared == wanted, (path, method)
                open_to_all = path in OPEN or path.endswith("/validate")
                assert ("security" in op) is not open_to_all, (path, method)
                if method == "get" and not open_to_all:  # a read: 401/403 documented
                    assert {"401", "403"} <= set(op["responses"]), (path, method)
