"""L1 and L5: bodies nested ~1,000 deep are 400 (not 500), non-JSON content types 415, and the
schemas are strict (no "50" for a number) with durations and steps in sane bounds (422 naming
the field)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.apiserver import Api, auth, error_of, refused_registration, registration, running_api
from support.configs import config_body

ROUTES = [
    ("POST", "/api/v1/canaries"),
    ("POST", "/api/v1/canaries/{id}/pause"),
    ("PUT", "/api/v1/configs/test-golden"),
    ("POST", "/api/v1/configs/validate"),
]
JSON = {"Content-Type": "application/json"}


async def _send(api: Api, method: str, path: str, data: bytes, headers: dict[str, str]) -> Any:
    created = await api.register()
    url = path.format(id=created["id"])
    return await api.client.request(method, url, data=data, headers=auth() | headers)


class TestBodyShape:
    """What a body must be before it is read."""

    @pytest.mark.parametrize(("method", "path"), ROUTES)
    async def test_deep_nesting_is_400(self, tmp_path: Path, method: str, path: str) -> None:
        """1,000 nested arrays (and objects): 400, nothing changed."""
        async with running_api(str(tmp_path / "db")) as api:
            for deep in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000):
                response = await _send(api, method, path, deep, JSON)
                error = await error_of(response, 400)
                assert "nested deeper" in error["error"]
            assert len(await api.store.list_canaries()) == 2

    @pytest.mark.parametrize(("method", "path"), ROUTES)
    async def test_not_json_content_type_is_415(
        self, tmp_path: Path, method: str, path: str
    ) -> None:
        """A JSON text sent as text/plain or form data: 415 naming Content-Type."""
        async with running_api(str(tmp_path / "db")) as api:
            for kind in ("text/plain", "application/x-www-form-urlencoded"):
                response = await _send(api, method, path, b"{}", {"Content-Type": kind})
                assert (await error_of(response, 415))["field"] == "Content-Type"


def _inline(**changes: Any) -> dict[str, Any]:
    body = registration(config_inline=config_body(**changes))
    del body["config"]
    return body


STRICT = {
    "weight-as-string": (
        registration(stages=[{"weight": "50", "duration": "10m"}, {"weight": 100, "duration": 0}]),
        "stages.0.weight",
    ),
    "bool-as-number": (registration(mode=1), "mode"),
    "alpha-as-string": (_inline(alpha="0.05"), "config_inline.alpha"),
    "step-1e300": (_inline(step=1e300, analysis_interval=1e300), "config_inline.step"),
    "step-over-an-hour": (_inline(step="2h", analysis_interval="4h"), "config_inline.step"),
    "huge-duration": (
        registration(stages=[{"weight": 5, "duration": "99999999999999999999d"}]),
        "stages.0.duration",
    ),
    "stage-over-a-week": (
        registration(stages=[{"weight": 5, "duration": "8d"}, {"weight": 100, "duration": 0}]),
        "stages.0.duration",
    ),
}


class TestStrictValues:
    """Values of the right JSON type and within bounds."""

    @pytest.mark.parametrize(("body", "field"), STRICT.values(), ids=STRICT.keys())
    async def test_refused_with_422_naming_the_field(
        self, tmp_path: Path, body: dict[str, Any], field: str
    ) -> None:
        """No string-to-number coercion, no absurd durations: 422 naming the field."""
        error = await refused_registration(str(tmp_path / "db"), body)
        assert error["field"] == field, error

    async def test_put_config_step_bounded(self, tmp_path: Path) -> None:
        """PUT of a config stepping every 1e300 s: 422 naming step."""
        body = config_body(step=1e300, analysis_interval=1e300)
        async with running_api(str(tmp_path / "db")) as api:
            put = await api.client.put("/api/v1/configs/test-golden", json=body, headers=auth())
            assert (await error_of(put, 422))["field"] == "step"
