"""Security of the running daemon: bearer tokens and their scopes (401 without, 403 without the
scope, compared in constant time).

The daemon is wired by ``Daemon.build`` from CANARYD_ settings on loopback (the ``start``
fixture, :mod:`support.secured`)."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest

from analyzer.api import auth as api_auth
from analyzer.errors import InvalidInput
from support.fakes import auth
from support.secured import ACT, ROOT, SCOPED, Daemonised

MUTATING = [
    ("POST", "/api/v1/canaries", "register"),
    ("POST", "/api/v1/canaries/{id}/abort", "act"),
    ("POST", "/api/v1/canaries/{id}/promote", "act"),
    ("POST", "/api/v1/canaries/{id}/pause", "act"),
    ("POST", "/api/v1/canaries/{id}/resume", "act"),
    ("PUT", "/api/v1/configs/{name}", "config"),
]
BAD_CREDENTIALS = {
    "none": {},
    "empty-bearer": {"Authorization": "Bearer "},
    "basic": {"Authorization": f"Basic {ROOT}"},
    "no-scheme": {"Authorization": ROOT},
    "unknown": auth("root-tok-5be0c1d7a8"),
    "prefix": auth(ROOT[:-1]),
    "extended": auth(ROOT + "0"),
    "case": auth(ROOT.upper()),
    "padded": {"Authorization": f"Bearer  {ROOT}"},
    "scoped-syntax": auth(f"act@{ACT}"),
}


def _url(path: str) -> str:
    return path.format(id="0" * 32, name="test-golden")


class TestBearerTokens:
    """Mutating endpoints need a bearer token with their scope: 401 without, 403 without the
    scope; tokens are compared in constant time."""

    async def test_the_mutating_endpoints_are_the_secured_ones(self, start: Daemonised) -> None:
        """The table above is every non-GET route but validate, and each is secured in the
        OpenAPI document (the reads are secured too: tests/security/test_api_reads.py)."""
        async with start("deploy.internal") as daemon:
            doc = await (await daemon.client.get("/openapi.json")).json()
            secured = {
                (method.upper(), path)
                for path, item in doc["paths"].items()
                for method, op in item.items()
                if "security" in op
            }
            app = daemon.client.app
            assert app is not None
            unsafe = {
                (r.method, r.resource.canonical)
                for r in app.router.routes()
                if r.resource is not None and r.method not in ("GET", "HEAD")
            }
        assert {(m, p) for m, p, _ in MUTATING} <= secured
        assert {(m, p) for m, p in secured if m != "GET"} == {(m, p) for m, p, _ in MUTATING}
        assert unsafe - secured == {("POST", "/api/v1/configs/validate")}

    @pytest.mark.parametrize(("method", "path", "scope"), MUTATING)
    async def test_without_a_valid_token_is_401(
        self, start: Daemonised, method: str, path: str, scope: str
    ) -> None:
        """No, malformed or wrong credentials: 401 with a Bearer challenge, before the body
        is read (even a body that is not JSON) and before the canary is looked up."""
        async with start("deploy.internal") as daemon:
            for name, credentials in BAD_CREDENTIALS.items():
                response = await daemon.client.request(
                    method, _url(path), data=b"{not json", headers=credentials
                )
                body = await response.json()
                assert response.status == 401, (name, scope, body)
                assert response.headers["WWW-Authenticate"].startswith('Bearer realm="canaryd"')
                assert body["error"] in ("missing bearer token", "invalid bearer token")

    @pytest.mark.parametrize(("method", "path", "scope"), MUTATING)
    async def test_a_token_without_the_scope_is_403(
        self, start: Daemonised, method: str, path: str, scope: str
    ) -> None:
        """Each scoped token that lacks the endpoint's scope: 403 naming the scope; the token
        with it (and the all-scopes token) get past auth."""
        async with start("deploy.internal") as daemon:
            for name, token in SCOPED.items():
                response = await daemon.client.request(
                    method, _url(path), json={}, headers=auth(token)
                )
                body = await response.json()
                if name == scope:
                    assert response.status not in (401, 403), body
                else:
                    assert response.status == 403, (name, body)
                    assert body["error"] == f"token lacks the {scope!r} scope"
            response = await daemon.client.request(method, _url(path), json={}, headers=auth(ROOT))
            assert response.status not in (401, 403)

    async def test_undecodable_header_bytes_are_401(self, start: Daemonised) -> None:
        """A token of bytes that are not UTF-8 is an invalid token (401), not a server error."""
        async with start("deploy.internal") as daemon:
            server = daemon.client.server
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                b"POST /api/v1/canaries HTTP/1.1\r\nHost: canaryd\r\n"
                b"Authorization: Bearer \xff\xfe\xc3\r\nContent-Length: 2\r\n"
                b"Connection: close\r\n\r\n{}"
            )
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await reader.read()
            writer.close()
            await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]

    async def test_oversize_unauthenticated_body_is_401(self, start: Daemonised) -> None:
        """Auth is decided before a large body is read."""
        async with start("deploy.internal") as daemon:
            big = b"x" * (daemon.settings.max_body_bytes + 1)
            response = await daemon.client.post("/api/v1/canaries", data=big)
            assert response.status == 401

    def test_tokens_are_compared_in_constant_time(self) -> None:
        """The check uses hmac.compare_digest on every token, with no early exit and no ==."""
        source = inspect.getsource(api_auth.require_scope)
        assert "hmac.compare_digest(" in source
        assert "break" not in source
        assert not re.search(
            r"(secret|presented|offered)\s*[!=]=|[!=]=\s*(token|presented)", source
        )

    def test_unknown_scope_is_refused(self) -> None:
        """A token entry with an unknown scope stops start-up naming the setting."""
        with pytest.raises(InvalidInput) as caught:
            api_auth.parse_tokens(["admin@tok"])
        assert caught.value.field == "CANARYD_API_TOKENS"
