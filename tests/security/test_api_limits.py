"""Limits per registration and config: 422 naming the field, nothing stored. Tunable ones are
settings (metrics and kill rules per config, metadata bytes); stages, value lengths and names
have fixed bounds in the schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analyzer.api.policy import ApiPolicy
from analyzer.settings import load_settings
from support.apiserver import auth, error_of, refused_registration, registration, running_api
from support.configs import config_body


def _metrics(n: int) -> list[dict[str, Any]]:
    metric = config_body()["metrics"][1]
    return [{**metric, "name": f"m{i}"} for i in range(n)]


def _inline(**changes: Any) -> dict[str, Any]:
    body = registration(config_inline=config_body(**changes))
    del body["config"]
    return body


def _kill(n: int) -> list[dict[str, Any]]:
    return [{"metric": "error_rate", "max": 0.5}] * n


REFUSED = {
    "metrics": (_inline(metrics=_metrics(51), groups={}), "config_inline.metrics"),
    "kill-rules": (_inline(kill_switch=_kill(21)), "config_inline.kill_switch"),
    "metadata-bytes": (registration(metadata={"blob": "x" * 16_400}), "metadata"),
    "label-value": (
        registration(canary={"labels": {"deployment": "x" * 1025}}),
        "canary.labels",
    ),
    "variable-value": (registration(variables={"job": "x" * 1025}), "variables.job"),
    "stages": (registration(stages=[{"weight": 100, "duration": "1m"}] * 21), "stages"),
    "name": (registration(name="n" * 201), "name"),
}


class TestRegistrationLimits:
    """What a registration may hold."""

    @pytest.mark.parametrize(("body", "field"), REFUSED.values(), ids=REFUSED.keys())
    async def test_over_a_limit_is_422_naming_the_field(
        self, tmp_path: Path, body: dict[str, Any], field: str
    ) -> None:
        """Over each bound: 422, field names it, no canary created."""
        error = await refused_registration(str(tmp_path / "db"), body)
        assert error["field"] == field, error

    async def test_config_limits_hold_for_put_and_validate(self, tmp_path: Path) -> None:
        """PUT of a config over the metric bound: 422 naming metrics; validate says invalid."""
        body = config_body(metrics=_metrics(51), groups={})
        async with running_api(str(tmp_path / "db")) as api:
            put = await api.client.put("/api/v1/configs/test-golden", json=body, headers=auth())
            assert (await error_of(put, 422))["field"] == "metrics"
            checked = await api.client.post("/api/v1/configs/validate", json=body)
            answer = await checked.json()
        assert answer["valid"] is False
        assert answer["errors"][0].startswith("metrics: 51 entries")

    async def test_limits_are_settings(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """CANARYD_MAX_CONFIG_METRICS=1 refuses a config of 2 metrics; CANARYD_MAX_METADATA_BYTES
        bounds metadata."""
        monkeypatch.setenv("CANARYD_MAX_CONFIG_METRICS", "1")
        monkeypatch.setenv("CANARYD_MAX_METADATA_BYTES", "64")
        policy = ApiPolicy.of(load_settings())
        async with running_api(str(tmp_path / "db"), policy=policy) as api:
            inline = _inline()
            assert len(inline["config_inline"]["metrics"]) == 2
            response = await api.client.post("/api/v1/canaries", json=inline, headers=auth())
            assert (await error_of(response, 422))["field"] == "config_inline.metrics"
            big = registration(metadata={"commit": "c" * 64})
            response = await api.client.post("/api/v1/canaries", json=big, headers=auth())
            assert (await error_of(response, 422))["field"] == "metadata"
