"""Authentication of the HTTP API: mutating endpoints need a bearer token with their scope.

The API on loopback through aiohttp's TestClient, wired as Daemon.build wires it (the ``api``
fixture, :mod:`support.apiserver`): a real SQLite store, catalog and fleet, and a Scheduler that
the tests wake by hand."""

from __future__ import annotations

import pytest

from support.apiserver import Api, auth, error_of, registration


class TestAuth:
    """Mutating endpoints need a bearer token with their scope."""

    async def test_no_token_is_401_with_a_challenge(self, api: Api) -> None:
        """Registering without a token: 401 and WWW-Authenticate: Bearer."""
        response = await api.client.post("/api/v1/canaries", json=registration())
        body = await error_of(response, 401)
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="canaryd"')
        assert body["error"] == "missing bearer token"

    async def test_wrong_scheme_is_401(self, api: Api) -> None:
        """Basic credentials are not a bearer token."""
        response = await api.client.post(
            "/api/v1/canaries", json=registration(), headers={"Authorization": "Basic cm9vdA=="}
        )
        await error_of(response, 401)

    async def test_wrong_token_is_401(self, api: Api) -> None:
        """An unknown token: 401 with error="invalid_token" in the challenge."""
        response = await api.client.post(
            "/api/v1/canaries", json=registration(), headers=auth("root-7d1e")
        )
        await error_of(response, 401)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    @pytest.mark.parametrize(
        ("method", "path", "token", "scope"),
        [
            ("POST", "/api/v1/canaries", "act-2b9c", "register"),
            ("POST", "/api/v1/canaries/x/abort", "reg-51aa", "act"),
            ("PUT", "/api/v1/configs/test-golden", "act-2b9c", "config"),
        ],
    )
    async def test_token_without_the_scope_is_403(
        self, api: Api, method: str, path: str, token: str, scope: str
    ) -> None:
        """A valid token lacking the endpoint's scope: 403 naming the scope."""
        response = await api.client.request(method, path, json={}, headers=auth(token))
        body = await error_of(response, 403)
        assert body["error"] == f"token lacks the {scope!r} scope"

    async def test_auth_comes_before_the_body(self, api: Api) -> None:
        """An unauthenticated request is refused before its body is read."""
        response = await api.client.post("/api/v1/canaries", data=b"{not json")
        await error_of(response, 401)

    async def test_scoped_token_works(self, api: Api) -> None:
        """The register-only token may register."""
        response = await api.client.post(
            "/api/v1/canaries", json=registration(), headers=auth("reg-51aa")
        )
        assert response.status == 201
