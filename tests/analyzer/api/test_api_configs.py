"""Judge configs over the HTTP API: list, get, put a new version, validate.

The API on loopback through aiohttp's TestClient, wired as Daemon.build wires it (the ``api``
fixture, :mod:`support.apiserver`): a real SQLite store, catalog and fleet, and a Scheduler that
the tests wake by hand."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.configs.judgeconfig import config_hash
from support.apiserver import Api, auth, error_of
from support.configs import config_body
from support.fakes import MakeConfig


class TestConfigs:
    """GET / PUT judge configs and POST validate."""

    async def test_list_and_get(self, api: Api, make_config: MakeConfig) -> None:
        """The stored config is listed and readable by name with its hash."""
        listed = await (await api.client.get("/api/v1/configs", headers=auth())).json()
        assert [c["name"] for c in listed] == ["test-golden"]
        one = await (await api.client.get("/api/v1/configs/test-golden", headers=auth())).json()
        assert one["hash"] == config_hash(make_config())
        assert one["body"]["analysis_interval"] == 300
        await error_of(await api.client.get("/api/v1/configs/nope", headers=auth()), 404)

    async def test_put_makes_a_new_version_and_canaries_keep_theirs(self, api: Api) -> None:
        """PUT stores a new current version; a canary registered earlier keeps its hash."""
        before = (await api.register())["config_hash"]
        response = await api.client.put(
            "/api/v1/configs/test-golden", json=config_body(warmup="1m"), headers=auth("cfg-90de")
        )
        body = await response.json()
        assert response.status == 200, body
        assert body["hash"] != before
        current = await (await api.client.get("/api/v1/configs/test-golden", headers=auth())).json()
        assert current["hash"] == body["hash"]
        later = (await api.register(name="later"))["config_hash"]
        assert later == body["hash"]
        listed = await (await api.client.get("/api/v1/canaries", headers=auth())).json()
        assert {c["config_hash"] for c in listed} == {before, later}

    async def test_put_name_mismatch_is_422(self, api: Api) -> None:
        """The body's name must match the path."""
        response = await api.client.put(
            "/api/v1/configs/other-name", json=config_body(), headers=auth()
        )
        error = await error_of(response, 422)
        assert error["field"] == "name"

    async def test_put_invalid_config_is_422_naming_the_field(self, api: Api) -> None:
        """A bad config is refused, naming the bad field."""
        body = config_body()
        body["metrics"][0]["kind"] = "gauge"
        response = await api.client.put("/api/v1/configs/test-golden", json=body, headers=auth())
        error = await error_of(response, 422)
        assert error["field"] == "metrics.0.kind"

    async def test_put_needs_a_token(self, api: Api) -> None:
        """PUT without a token: 401."""
        response = await api.client.put("/api/v1/configs/test-golden", json=config_body())
        await error_of(response, 401)

    async def test_validate_valid(self, api: Api, make_config: MakeConfig) -> None:
        """A valid config: valid true and its hash."""
        response = await api.client.post("/api/v1/configs/validate", json=config_body())
        assert await response.json() == {
            "valid": True,
            "hash": config_hash(make_config()),
            "errors": [],
        }

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"step": "soon"}, "step"),
            ({"lookBackMins": 5}, "lookBackMins"),
            ({"score_thresholds": {"pass": 40, "marginal": 60}}, "score_thresholds"),
            ({"kill_switch": [{"metric": "nope", "max": 1}]}, "kill_switch.0.metric"),
        ],
    )
    async def test_validate_invalid_names_the_field(
        self, api: Api, change: dict[str, Any], field: str
    ) -> None:
        """An invalid config: 200 with valid false and errors that start with the field."""
        response = await api.client.post("/api/v1/configs/validate", json=config_body(**change))
        body = await response.json()
        assert response.status == 200
        assert body["valid"] is False
        assert body["errors"][0].startswith(f"{field}:")

    async def test_validate_not_json_is_400(self, api: Api) -> None:
        """A body that is not JSON: 400."""
        response = await api.client.post(
            "/api/v1/configs/validate",
            data=b"name: yaml",
            headers={"Content-Type": "application/json"},
        )
        await error_of(response, 400)
