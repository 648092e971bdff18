"""Registration over the HTTP API: 201 with the canary, or an error naming the field; label
values never change a query's structure.

The API on loopback through aiohttp's TestClient, wired as Daemon.build wires it (the ``api``
fixture, :mod:`support.apiserver`): a real SQLite store, catalog and fleet, and a Scheduler that
the tests wake by hand."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.configs.judgeconfig import config_hash, parse_config
from analyzer.sources.promql.parse import CounterQuery, HistogramQuery, parse
from analyzer.sources.promql.render import render
from support.apiserver import MAX_BODY, Api, auth, error_of, registration
from support.configs import config_body

BAD_REGISTRATIONS = {
    "zero-weight": ({"stages": [{"weight": 0, "duration": "10m"}]}, "stages.0.weight", ""),
    "weight-over-100": (
        {"stages": [{"weight": 5, "duration": "1m"}, {"weight": 101, "duration": "1m"}]},
        "stages.1.weight",
        "",
    ),
    "bad-duration": (
        {"stages": [{"weight": 5, "duration": "ten minutes"}]},
        "stages.0.duration",
        "invalid duration",
    ),
    "decreasing-weights": (
        {"stages": [{"weight": 50, "duration": "1m"}, {"weight": 5, "duration": "1m"}]},
        "stages",
        "must not decrease",
    ),
    "no-stages": ({"stages": []}, "stages", ""),
    "bad-label-name": (
        {"baseline": {"labels": {"dep-loyment": "x"}}},
        "baseline.labels",
        "'dep-loyment'",
    ),
    "reserved-label-name": (
        {"canary": {"labels": {"__name__": "up"}}},
        "canary.labels",
        "'__name__'",
    ),
    "no-labels": ({"baseline": {"labels": {}}}, "baseline.labels", ""),
    "nul-in-label-value": (
        {"canary": {"labels": {"deployment": "a\x00b"}}},
        "canary.labels",
        "NUL",
    ),
    "unknown-key": ({"colour": "blue"}, "colour", "Extra inputs"),
    "missing-service": ({"service": None}, "service", ""),
    "webhook-not-allowed": (
        {"webhook": {"url": "https://evil.example/hook"}},
        "webhook.url",
        "not in the allowed webhook hosts",
    ),
    "webhook-link-local": (
        {"webhook": {"url": "http://169.254.10.1/hook"}},
        "webhook.url",
        "link-local",
    ),
    "webhook-metadata": (
        {"webhook": {"url": "http://169.254.169.254/latest/meta-data"}},
        "webhook.url",
        "metadata",
    ),
    "webhook-scheme": ({"webhook": {"url": "ftp://deploy.internal/x"}}, "webhook.url", "scheme"),
    "live-without-webhook": ({"webhook": None}, "webhook", "required for a live canary"),
    "unknown-config": ({"config": "no-such-config"}, "config", "no-such-config"),
    "config-and-inline": ({"config_inline": config_body()}, "config", "exactly one"),
    "neither-config": ({"config": None}, "config", "exactly one"),
    "undeclared-variable": ({"variables": {"region": "eu"}}, "variables.region", ""),
}


class TestRegistration:
    """POST /api/v1/canaries: 201 with the canary, or an error naming the field."""

    async def test_registered_in_warmup(self, api: Api) -> None:
        """A good registration answers 201 with the canary in warm-up at its first weight."""
        body = await api.register()
        assert body["phase"] == "warmup"
        assert (body["stage"], body["weight"], body["mode"]) == (0, 5, "live")
        assert body["config"] == "test-golden"
        assert (body["stages"][0]["weight"], body["stages"][0]["duration_s"]) == (5, 600)
        assert body["metadata"]["commit"] == "abc123"
        assert body["id"] in api.fleet.canaries

    @pytest.mark.parametrize(
        ("changes", "field", "says"), BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys()
    )
    async def test_invalid_is_422_naming_the_field(
        self, api: Api, changes: dict[str, Any], field: str, says: str
    ) -> None:
        """Each bad input is refused with 422, ``field`` naming where and the detail why."""
        body = registration(**changes)
        for key, value in changes.items():
            if value is None:
                del body[key]
        response = await api.client.post("/api/v1/canaries", json=body, headers=auth())
        error = await error_of(response, 422)
        assert error["field"] == field
        assert says in " ".join(error["detail"])
        assert api.fleet.canaries == {}

    async def test_unknown_variable_in_inline_config_names_the_query(self, api: Api) -> None:
        """An inline config whose query uses an undeclared variable: 422 naming the query."""
        inline = config_body(name="inline-golden")
        inline["metrics"][1]["query"] = 'max(up{cluster="${cluster}",${selector}})'
        response = await api.client.post(
            "/api/v1/canaries",
            json=registration(config=None, config_inline=inline) | {"config": None},
            headers=auth(),
        )
        error = await error_of(response, 422)
        # ``config: None`` is the default; what is judged is the inline config
        assert error["field"] == "config_inline.metrics.1.query"
        assert "unknown variable ${cluster}" in " ".join(error["detail"])

    async def test_invalid_inline_config_names_its_field(self, api: Api) -> None:
        """A bad key inside config_inline is named under config_inline."""
        inline = config_body(name="inline-golden")
        inline["metrics"][0]["kind"] = "gauge"
        body = registration(config_inline=inline)
        del body["config"]
        response = await api.client.post("/api/v1/canaries", json=body, headers=auth())
        error = await error_of(response, 422)
        assert error["field"] == "config_inline.metrics.0.kind"

    async def test_inline_config_is_stored_and_pinned(self, api: Api) -> None:
        """A valid inline config is stored by its hash (shown as inline:<name>, never a named
        config's version); the canary pins its hash."""
        inline = config_body(name="inline-golden", warmup="30s")
        body = registration(config_inline=inline)
        del body["config"]
        response = await api.client.post("/api/v1/canaries", json=body, headers=auth())
        created = await response.json()
        assert response.status == 201, created
        assert created["config"] == "inline:inline-golden"
        assert created["config_hash"] == config_hash(parse_config(inline))
        assert (await api.store.get_config_version(created["config_hash"])) is not None
        assert (await api.store.get_config("inline-golden")) is None

    async def test_not_json_is_400(self, api: Api) -> None:
        """A body that is not JSON: 400."""
        headers = auth() | {"Content-Type": "application/json"}
        response = await api.client.post("/api/v1/canaries", data=b'{"name": "x",', headers=headers)
        error = await error_of(response, 400)
        assert error["error"].startswith("body is not valid JSON")

    async def test_json_that_is_not_an_object_is_422(self, api: Api) -> None:
        """A JSON array is not a registration."""
        response = await api.client.post("/api/v1/canaries", json=[1, 2], headers=auth())
        await error_of(response, 422)

    async def test_oversize_body_is_413(self, api: Api) -> None:
        """A body over the limit: 413, and nothing registered."""
        big = registration(metadata={"blob": "x" * MAX_BODY})
        response = await api.client.post("/api/v1/canaries", json=big, headers=auth())
        error = await error_of(response, 413)
        assert error["error"] == "request body too large"
        assert api.fleet.canaries == {}

    async def test_dry_run_needs_no_webhook(self, api: Api) -> None:
        """A dry-run canary may register without a webhook."""
        body = registration(mode="dry-run")
        del body["webhook"]
        response = await api.client.post("/api/v1/canaries", json=body, headers=auth())
        assert response.status == 201

    async def test_shutting_down_refuses_registrations(self, api: Api) -> None:
        """While the fleet is not accepting, registration answers 503."""
        api.fleet.accepting = False
        response = await api.client.post("/api/v1/canaries", json=registration(), headers=auth())
        await error_of(response, 503)


INJECTIONS = [
    'x"} or vector(1) or up{a="',
    'x"}[5m])) or on() vector(1) #',
    "back\\slash\\",
    'quote\\"} or vector(1',
    "new\nline\ttab",
    "ünïcødé ☃",
]


class TestPromqlInjection:
    """Label values are escaped into the matchers; they never change a query's structure."""

    @pytest.mark.parametrize("value", INJECTIONS)
    async def test_label_value_stays_one_matcher(self, api: Api, value: str) -> None:
        """Accepted, and every rendered query has one matcher per label holding the raw value."""
        labels = {"deployment": value, "zone": "eu-1"}
        created = await api.register(canary={"labels": labels})
        canary = await api.fleet.get(created["id"])
        assert canary.canary.labels == labels
        config = await api.catalog.by_hash(canary.config_hash)
        shapes = set()
        for metric in config.metrics:
            for template in metric.templates().values():
                text = render(
                    template,
                    labels=canary.canary.labels,
                    step_s=config.step,
                    window_s=config.analysis_interval,
                    variables=config.variables,
                )
                query = parse(text)
                shapes.add(type(query))
                matchers = query.selector.matchers
                by_label = {m.name: m for m in matchers if m.name in labels}
                assert len(by_label) == len(labels) == sum(m.name in labels for m in matchers)
                for name, expected in labels.items():
                    assert (by_label[name].op, by_label[name].value) == ("=", expected)
        assert shapes == {CounterQuery, HistogramQuery}

    async def test_label_name_cannot_inject(self, api: Api) -> None:
        """A label name carrying PromQL is refused, naming it."""
        bad = 'deployment="x"} or vector(1) or up{a'
        response = await api.client.post(
            "/api/v1/canaries", json=registration(canary={"labels": {bad: "x"}}), headers=auth()
        )
        error = await error_of(response, 422)
        assert error["field"] == "canary.labels"
        assert repr(bad) in " ".join(error["detail"])

    async def test_empty_label_value_is_refused(self, api: Api) -> None:
        """An empty value would match every series lacking the label: refused, naming it."""
        response = await api.client.post(
            "/api/v1/canaries",
            json=registration(baseline={"labels": {"deployment": ""}}),
            headers=auth(),
        )
        error = await error_of(response, 422)
        assert error["field"] == "baseline.labels.deployment"
