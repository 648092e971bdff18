"""Registration's answer and POST /api/v1/configs/validate warn about overlapping samples;
``dependence`` is validated like every other field (422 naming it). Through aiohttp's
TestClient on loopback, with a real SQLite store, catalog and fleet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from analyzer.api.app import build_app
from analyzer.api.auth import parse_tokens
from analyzer.api.context import ApiContext
from analyzer.api.openapi import openapi_document
from analyzer.configs.catalog import Catalog
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet
from support import fakes
from support.configs import load
from support.fakes import SteppedClock
from support.loopback import Client, client

ROOT = "root-3c5e"
OVERLAPPING = "sum(increase(http_requests_total{${selector}}[${range}]))"


@pytest.fixture
async def http(
    store: SqliteStore, catalog: Catalog, clock: SteppedClock, telemetry: Telemetry
) -> AsyncIterator[Client]:
    """The API app, as the daemon wires it, on 127.0.0.1:0 (no scheduler: nothing is judged)."""
    fleet = Fleet(store, catalog, clock, telemetry, public_url="http://canaryd.test")
    ctx = ApiContext(
        fleet=fleet,
        telemetry=telemetry,
        tokens=parse_tokens([ROOT]),
        allowed_hosts=["deploy.internal"],
        scrape_mode=False,
        ready=True,
    )
    async with client(build_app(ctx)) as opened:
        yield opened


def inline(**tune: Any) -> dict[str, Any]:
    """latency-only's p99 at a 2 s step, its range the variable ${range} (default 10s)."""
    return load(
        "latency-only",
        metrics=["latency_p99"],
        step="2s",
        queries={"latency_p99": OVERLAPPING},
        tune={"latency_p99": tune},
        variables={"range": "10s"},
        analysis_interval="1m",
        lookback=None,
        warmup="0s",
        name="overlapping",
    )


def body(config: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A dry-run registration with ``config`` inline."""
    spec = fakes.registration(config_inline=config, mode="dry-run", **changes)
    del spec["config"], spec["webhook"]
    return spec


async def post(http: Client, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await http.post("/api/v1/canaries", json=spec, headers=fakes.auth(ROOT))
    return response.status, await response.json()


class TestRegistrationWarnings:
    """The 201 answer carries ``warnings`` naming the metric; the canary is registered."""

    async def test_overlapping_range_is_warned(self, http: Client) -> None:
        """[${range}] = 10s at a 2 s step: one warning naming latency_p99."""
        status, created = await post(http, body(inline()))
        assert status == 201, created
        (warning,) = created["warnings"]
        assert warning.startswith("latency_p99: metrics.0.query range [${range}] = 10s")
        assert "each sample overlaps the next 4" in warning

    async def test_canary_variables_are_the_ones_judged(self, http: Client) -> None:
        """The canary's range of 2s (one step) overlaps nothing: no warnings key at all, as
        before warnings existed."""
        status, created = await post(http, body(inline(), variables={"range": "2s"}))
        assert status == 201, created
        assert "warnings" not in created

    async def test_unknown_dependence_is_422_naming_the_field(self, http: Client) -> None:
        """dependence: always is refused at config_inline.metrics.0.dependence."""
        status, error = await post(http, body(inline(dependence="always")))
        assert status == 422, error
        assert error["field"] == "config_inline.metrics.0.dependence"

    async def test_adjusted_metric_is_registered_with_its_note(self, http: Client) -> None:
        """dependence: adjust is accepted; the warning says the test is widened for it."""
        status, created = await post(http, body(inline(dependence="adjust")))
        assert status == 201, created
        assert "dependence: adjust widens" in created["warnings"][0]


class TestValidateWarnings:
    """POST /api/v1/configs/validate: valid, with the warnings."""

    async def test_validate_lists_the_warning(self, http: Client) -> None:
        """The overlapping config is valid and warned about."""
        response = await http.post("/api/v1/configs/validate", json=inline())
        answer = await response.json()
        assert response.status == 200
        assert answer["valid"] is True
        assert answer["warnings"][0].startswith("latency_p99: ")


class TestOpenApi:
    """The document describes the new optional fields."""

    def test_warnings_and_dependence_are_documented(self) -> None:
        """CanaryOut and ValidateOut have warnings; MetricConfig has dependence."""
        schemas = openapi_document()["components"]["schemas"]
        assert "warnings" in schemas["CanaryOut"]["properties"]
        assert "warnings" in schemas["ValidateOut"]["properties"]
        assert "warnings" not in schemas["CanaryOut"].get("required", [])
        assert schemas["Dependence"]["enum"] == ["none", "adjust"]
