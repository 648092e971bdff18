"""The input edges the API's document promises, over blocking HTTP against the app served from
a thread (``threaded_api``): 413 for oversize bodies, 400 for what is not JSON, and 422 naming
the field for bad judge configs."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from support.apiserver import MAX_BODY, ThreadedApi, auth
from support.configs import config_body


def _error(response: requests.Response, status: int) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == status, body
    assert set(body) == {"error", "field", "detail"}
    return body


BODY_ROUTES = [
    ("POST", "/api/v1/canaries"),
    ("POST", "/api/v1/canaries/{id}/pause"),
    ("PUT", "/api/v1/configs/test-golden"),
    ("POST", "/api/v1/configs/validate"),
]

NOT_JSON = {
    "truncated": b'{"name": "x",',
    "nan": b'{"weight": NaN}',
    "infinity": b"[Infinity]",
    "lone-surrogate": b'{"metadata": {"commit": "\\ud800"}}',
    "not-utf8": b"\xff{}",
}
"""Bodies Python's json module would take (or chokes on) but that are not JSON."""


class TestBodies:
    """Oversize bodies are 413 and what is not JSON is 400, on every route that takes one."""

    @pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
    def test_oversize_is_413(
        self,
        threaded_api: ThreadedApi,
        http: requests.Session,
        canary_ids: list[str],
        method: str,
        path: str,
    ) -> None:
        """A body over the limit: 413 with the JSON error body."""
        url = threaded_api.base_url + path.format(id=canary_ids[0])
        big = b'{"pad": "' + b"x" * MAX_BODY + b'"}'
        response = http.request(method, url, data=big, headers=auth())
        assert _error(response, 413)["error"] == "request body too large"

    @pytest.mark.parametrize("route", BODY_ROUTES, ids=[" ".join(r) for r in BODY_ROUTES])
    @pytest.mark.parametrize("raw", NOT_JSON.values(), ids=NOT_JSON.keys())
    def test_not_json_is_400(
        self,
        threaded_api: ThreadedApi,
        http: requests.Session,
        canary_ids: list[str],
        route: tuple[str, str],
        raw: bytes,
    ) -> None:
        """Truncated JSON, Python's NaN/Infinity, lone surrogates, non-UTF-8: 400, not 5xx."""
        method, path = route
        url = threaded_api.base_url + path.format(id=canary_ids[-1])
        headers = auth() | {"Content-Type": "application/json"}
        response = http.request(method, url, data=raw, headers=headers)
        assert _error(response, 400)["error"].startswith("body is not valid JSON")


def _metric(index: int, **changes: Any) -> dict[str, Any]:
    metric: dict[str, Any] = {**config_body()["metrics"][index], **changes}
    return metric


BAD_CONFIGS = {
    "unknown-top-level-key": ({"lookBackMins": 5}, "lookBackMins"),
    "unknown-metric-key": (
        {"metrics": [_metric(0, colour="red"), _metric(1)]},
        "metrics.0.colour",
    ),
    "bad-step": ({"step": "ten minutes"}, "step"),
    "bad-interval-unit": ({"analysis_interval": "5y"}, "analysis_interval"),
    "negative-warmup": ({"warmup": -1}, "warmup"),
    "bad-kill-window": (
        {"kill_switch": [{"metric": "error_rate", "max": 0.2, "window": "soon"}]},
        "kill_switch.0.window",
    ),
    "group-weight-over-100": ({"groups": {"errors": 101, "latency": 0}}, "groups.errors"),
    "group-weights-add-over-100": ({"groups": {"errors": 70, "latency": 40}}, "groups"),
    "pass-over-100": ({"score_thresholds": {"pass": 101, "marginal": 50}}, "score_thresholds.pass"),
    "unknown-kill-metric": (
        {"kill_switch": [{"metric": "nope", "max": 1}]},
        "kill_switch.0.metric",
    ),
    "unknown-group": ({"groups": {"errors": 60, "ghosts": 40}}, "groups"),
    "unknown-variable": (
        {"metrics": [_metric(0), _metric(1, query='max(up{${selector},zone="${zone}"})')]},
        "metrics.1.query",
    ),
}


class TestConfigValidation:
    """Bad judge configs: PUT answers 422 naming the field; validate answers valid false with
    errors that start with the field (it is a question, not a change)."""

    @pytest.mark.parametrize(("change", "path"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
    def test_put_is_422_naming_the_field(
        self, threaded_api: ThreadedApi, http: requests.Session, change: dict[str, Any], path: str
    ) -> None:
        """PUT /api/v1/configs/{name}: 422, ``field`` is the dotted path of the bad field."""
        response = http.put(
            f"{threaded_api.base_url}/api/v1/configs/test-golden",
            json=config_body(**change),
            headers=auth(),
        )
        error = _error(response, 422)
        assert error["field"] == path, error
        assert error["detail"][0].startswith(f"{path}: "), error

    @pytest.mark.parametrize(("change", "path"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
    def test_validate_names_the_field(
        self, threaded_api: ThreadedApi, http: requests.Session, change: dict[str, Any], path: str
    ) -> None:
        """POST /api/v1/configs/validate: valid false, the first error names the field."""
        response = http.post(
            f"{threaded_api.base_url}/api/v1/configs/validate", json=config_body(**change)
        )
        body = response.json()
        assert response.status_code == 200, body
        assert body["valid"] is False
        assert body["errors"][0].startswith(f"{path}: "), body
