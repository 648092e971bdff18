"""The HTTP API on loopback through aiohttp's TestClient (``support.loopback.client``), wired as
Daemon.build wires it: a real SQLite store, catalog and fleet, and a Scheduler that the tests
wake by hand."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from analyzer.api.app import ApiContext, build_app
from analyzer.api.auth import parse_tokens
from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import config_hash, parse_config
from analyzer.sources.promql.parse import CounterQuery, HistogramQuery, parse
from analyzer.sources.promql.render import render
from analyzer.sources.protocol import FetchRequest
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet
from analyzer.tick.scheduler import Scheduler
from support import fakes
from support.configs import config_body
from support.fakes import T0, FakeSource, MakeConfig, SteppedClock, Traffic
from support.loopback import Client, client

ROOT = "root-7d1f"
"""A token with every scope."""
TOKENS = [ROOT, "act@act-2b9c", "register@reg-51aa", "config@cfg-90de"]
MAX_BODY = 64 * 1024
ON_FIRE = Traffic(error_rate={"baseline": 0.01, "canary": 0.5})


def auth(token: str = ROOT) -> dict[str, str]:
    """The Authorization header of a bearer token (the root one unless given)."""
    return fakes.auth(token)


def registration(**changes: Any) -> dict[str, Any]:
    """A valid registration body (DESIGN §5): three stages, live, with commit metadata, and
    top-level keys replaced."""
    stages = [
        {"weight": 5, "duration": "10m"},
        {"weight": 25, "duration": "10m"},
        {"weight": 100, "duration": "0s"},
    ]
    metadata = {"commit": "abc123", "commit_time": "2026-11-29T10:00:00Z"}
    return fakes.registration(**{"stages": stages, "mode": "live", "metadata": metadata, **changes})


@dataclass(slots=True)
class Api:
    """The client and what stands behind the server."""

    client: Client
    ctx: ApiContext
    fleet: Fleet
    scheduler: Scheduler
    store: SqliteStore
    catalog: Catalog
    clock: SteppedClock
    app: web.Application

    async def register(self, **changes: Any) -> dict[str, Any]:
        """Register a canary; asserts 201."""
        response = await self.client.post(
            "/api/v1/canaries", json=registration(**changes), headers=auth()
        )
        body = await response.json()
        assert response.status == 201, body
        return body

    async def wake(self) -> None:
        """One scheduler wake-up at the current fake time."""
        now = self.clock.now()
        batch = self.scheduler.due(now)
        if batch:
            await self.scheduler.tick_batch(batch, now)


def _traffic(request: FetchRequest) -> Any:
    fire = request.canary.labels.get("deployment") == "on-fire"
    return (ON_FIRE if fire else Traffic())(request)


@pytest.fixture
async def api(
    store: SqliteStore,
    catalog: Catalog,
    clock: SteppedClock,
    telemetry: Telemetry,
    make_config: MakeConfig,
) -> AsyncIterator[Api]:
    """The app as Daemon.build and its cleanup context put it together, on 127.0.0.1:0."""
    await catalog.put(make_config())
    fleet = Fleet(store, catalog, clock, telemetry, public_url="http://canaryd.test")
    scheduler = Scheduler(fleet, FakeSource(_traffic), clock)
    fleet.on_change = scheduler.poke
    telemetry.watch_phases(fleet.phase_counts)
    ctx = ApiContext(
        fleet=fleet,
        telemetry=telemetry,
        tokens=parse_tokens(TOKENS),
        allowed_hosts=["deploy.internal", "127.0.0.1"],
        scrape_mode=False,
        ready=True,
    )
    app = build_app(ctx, max_body_bytes=MAX_BODY)
    async with client(app) as http:
        yield Api(
            client=http,
            ctx=ctx,
            fleet=fleet,
            scheduler=scheduler,
            store=store,
            catalog=catalog,
            clock=clock,
            app=app,
        )


async def error_of(response: Any, status: int) -> dict[str, Any]:
    """The JSON error body of a response with ``status``."""
    body = await response.json()
    assert response.status == status, body
    assert set(body) == {"error", "field", "detail"}
    return body


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
        """A valid inline config is stored; the canary pins its hash."""
        inline = config_body(name="inline-golden", warmup="30s")
        body = registration(config_inline=inline)
        del body["config"]
        response = await api.client.post("/api/v1/canaries", json=body, headers=auth())
        created = await response.json()
        assert response.status == 201, created
        assert created["config"] == "inline-golden"
        assert created["config_hash"] == config_hash(parse_config(inline))

    async def test_not_json_is_400(self, api: Api) -> None:
        """A body that is not JSON: 400."""
        response = await api.client.post("/api/v1/canaries", data=b'{"name": "x",', headers=auth())
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


class TestCanaries:
    """Reading canaries: the list with its filter, one canary's history, the verdict."""

    async def test_list_and_filter_by_phase(self, api: Api) -> None:
        """All canaries newest first; ?phase= keeps one phase."""
        first = await api.register(name="first")
        await api.clock.advance(1)
        second = await api.register(name="second")
        paused = await api.client.post(f"/api/v1/canaries/{first['id']}/pause", headers=auth())
        assert paused.status == 200
        everything = await (await api.client.get("/api/v1/canaries")).json()
        assert [c["id"] for c in everything] == [second["id"], first["id"]]
        only = await (await api.client.get("/api/v1/canaries?phase=paused")).json()
        assert [c["id"] for c in only] == [first["id"]]
        warm = await (await api.client.get("/api/v1/canaries", params={"phase": "warmup"})).json()
        assert [c["id"] for c in warm] == [second["id"]]
        none = await (await api.client.get("/api/v1/canaries?phase=promoted")).json()
        assert none == []

    async def test_bad_phase_filter_is_422(self, api: Api) -> None:
        """An unknown phase is refused, naming the parameter."""
        response = await api.client.get("/api/v1/canaries?phase=sleeping")
        error = await error_of(response, 422)
        assert error["field"] == "phase"
        assert "sleeping" in error["error"]

    async def test_one_canary_with_ticks_decisions_deliveries(self, api: Api) -> None:
        """GET one: the state plus every tick, decision and delivery."""
        created = await api.register()
        fresh = await (await api.client.get(f"/api/v1/canaries/{created['id']}")).json()
        assert (fresh["ticks"], fresh["decisions"], fresh["deliveries"]) == ([], [], [])
        await api.wake()
        await api.clock.jump_to(T0 + 60)
        await api.wake()
        promoted = await api.client.post(
            f"/api/v1/canaries/{created['id']}/promote", json={"reason": "ship"}, headers=auth()
        )
        assert promoted.status == 200
        body = await (await api.client.get(f"/api/v1/canaries/{created['id']}")).json()
        assert [t["seq"] for t in body["ticks"]] == [1, 2]
        assert body["ticks"][0]["reason"] == "analysis started"
        assert body["ticks"][1]["results"]["kill_switch"][0]["metric"] == "error_rate"
        assert [(d["seq"], d["action"], d["reason"]) for d in body["decisions"]] == [
            (1, "promote", "ship")
        ]
        assert body["decisions"][0]["delivery_id"] == f"{created['id']}:1"
        assert [(d["delivery_id"], d["event"], d["state"]) for d in body["deliveries"]] == [
            (f"{created['id']}:1", "promote", "pending")
        ]
        assert body["deliveries"][0]["url"] == "https://deploy.internal/hooks/canary"
        assert (body["phase"], body["weight"]) == ("promoted", 100)

    async def test_unknown_canary_is_404(self, api: Api) -> None:
        """GET, verdict and actions on an unknown id: 404."""
        for response in (
            await api.client.get("/api/v1/canaries/nope"),
            await api.client.get("/api/v1/canaries/nope/verdict"),
            await api.client.post("/api/v1/canaries/nope/abort", headers=auth()),
        ):
            await error_of(response, 404)

    async def _verdict(self, api: Api, canary_id: str) -> dict[str, Any]:
        response = await api.client.get(f"/api/v1/canaries/{canary_id}/verdict")
        assert response.status == 200
        return await response.json()

    async def test_verdict_mapping(self, api: Api) -> None:
        """warmup→running, paused→inconclusive, promoted→pass, rolled back→fail, aborted→none."""
        ids = {name: (await api.register(name=name))["id"] for name in ("w", "p", "a", "ok")}
        fire = (await api.register(name="fire", canary={"labels": {"deployment": "on-fire"}}))["id"]
        assert (await self._verdict(api, ids["w"]))["verdict"] == "running"
        await api.client.post(f"/api/v1/canaries/{ids['p']}/pause", headers=auth())
        await api.client.post(f"/api/v1/canaries/{ids['a']}/abort", headers=auth())
        await api.client.post(f"/api/v1/canaries/{ids['ok']}/promote", headers=auth())
        await api.wake()
        await api.clock.jump_to(T0 + 60)
        await api.wake()  # the kill-switch trips for the one on fire
        got = {name: await self._verdict(api, cid) for name, cid in {**ids, "fire": fire}.items()}
        assert {name: v["verdict"] for name, v in got.items()} == {
            "w": "running",
            "p": "inconclusive",
            "a": "none",
            "ok": "pass",
            "fire": "fail",
        }
        assert got["fire"]["phase"] == "rolled_back"
        assert got["fire"]["reason"].startswith("kill-switch: error_rate")
        assert got["w"]["phase"] == "running"


class TestActions:
    """POST abort / promote / pause / resume; 409 when the phase does not allow it."""

    async def test_pause_resume_abort(self, api: Api) -> None:
        """pause → paused, resume → back to warm-up, abort → aborted; each one decision."""
        cid = (await api.register())["id"]
        for action, phase in (("pause", "paused"), ("resume", "warmup"), ("abort", "aborted")):
            response = await api.client.post(f"/api/v1/canaries/{cid}/{action}", headers=auth())
            body = await response.json()
            assert response.status == 200, body
            assert body["phase"] == phase
        decisions = await api.store.list_decisions(cid)
        assert [d.action.value for d in decisions] == ["pause", "resume", "abort"]
        assert decisions[0].reason == "pause requested over the API"

    @pytest.mark.parametrize(
        ("setup", "action"),
        [
            ((), "resume"),
            (("pause",), "pause"),
            (("abort",), "abort"),
            (("abort",), "resume"),
            (("promote",), "abort"),
            (("promote",), "promote"),
        ],
    )
    async def test_conflict_is_409(self, api: Api, setup: tuple[str, ...], action: str) -> None:
        """An action that does not fit the canary's phase is a 409 naming both."""
        cid = (await api.register())["id"]
        for earlier in setup:
            assert (
                await api.client.post(f"/api/v1/canaries/{cid}/{earlier}", headers=auth())
            ).status == 200
        before = len(await api.store.list_decisions(cid))
        response = await api.client.post(f"/api/v1/canaries/{cid}/{action}", headers=auth())
        error = await error_of(response, 409)
        assert error["error"].startswith(f"cannot {action} a canary that is")
        assert len(await api.store.list_decisions(cid)) == before

    async def test_resume_a_running_canary_is_409(self, api: Api) -> None:
        """A running canary cannot be resumed."""
        cid = (await api.register())["id"]
        await api.wake()
        response = await api.client.post(f"/api/v1/canaries/{cid}/resume", headers=auth())
        error = await error_of(response, 409)
        assert error["error"] == "cannot resume a canary that is running"

    async def test_action_body_is_validated(self, api: Api) -> None:
        """Unknown keys in an action body are refused, naming them."""
        cid = (await api.register())["id"]
        response = await api.client.post(
            f"/api/v1/canaries/{cid}/abort", json={"why": "x"}, headers=auth()
        )
        error = await error_of(response, 422)
        assert error["field"] == "why"


class TestConfigs:
    """GET / PUT judge configs and POST validate."""

    async def test_list_and_get(self, api: Api, make_config: MakeConfig) -> None:
        """The stored config is listed and readable by name with its hash."""
        listed = await (await api.client.get("/api/v1/configs")).json()
        assert [c["name"] for c in listed] == ["test-golden"]
        one = await (await api.client.get("/api/v1/configs/test-golden")).json()
        assert one["hash"] == config_hash(make_config())
        assert one["body"]["analysis_interval"] == 300
        await error_of(await api.client.get("/api/v1/configs/nope"), 404)

    async def test_put_makes_a_new_version_and_canaries_keep_theirs(self, api: Api) -> None:
        """PUT stores a new current version; a canary registered earlier keeps its hash."""
        before = (await api.register())["config_hash"]
        response = await api.client.put(
            "/api/v1/configs/test-golden", json=config_body(warmup="1m"), headers=auth("cfg-90de")
        )
        body = await response.json()
        assert response.status == 200, body
        assert body["hash"] != before
        current = await (await api.client.get("/api/v1/configs/test-golden")).json()
        assert current["hash"] == body["hash"]
        later = (await api.register(name="later"))["config_hash"]
        assert later == body["hash"]
        listed = await (await api.client.get("/api/v1/canaries")).json()
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
        response = await api.client.post("/api/v1/configs/validate", data=b"name: yaml")
        await error_of(response, 400)


class TestHealthAndMetrics:
    """/healthz, /readyz and the daemon's own /metrics."""

    async def test_healthz(self, api: Api) -> None:
        """The process is up."""
        response = await api.client.get("/healthz")
        assert (response.status, await response.json()) == (200, {"status": "ok"})

    async def test_readyz(self, api: Api) -> None:
        """503 until ready, 200 once ready, 503 again while shutting down."""
        api.ctx.ready = False
        assert (await api.client.get("/readyz")).status == 503
        api.ctx.ready = True
        ready = await api.client.get("/readyz")
        assert (ready.status, (await ready.json())["status"]) == (200, "ready")
        api.fleet.accepting = False
        assert (await api.client.get("/readyz")).status == 503

    async def test_metrics_exposition(self, api: Api, telemetry: Telemetry) -> None:
        """The exposition has ticks, decisions, deliveries and canaries by phase."""
        cid = (await api.register())["id"]
        await api.register(name="other")
        await api.wake()
        await api.client.post(f"/api/v1/canaries/{cid}/pause", headers=auth())
        telemetry.deliveries.labels(outcome="delivered").inc()
        response = await api.client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(await response.text())}
        for name in (
            "canaryd_ticks",
            "canaryd_decisions",
            "canaryd_webhook_deliveries",
            "canaryd_canaries",
            "canaryd_tick_duration_seconds",
        ):
            assert name in families
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families.values()
            for s in f.samples
        }
        assert samples[("canaryd_ticks_total", (("verdict", "running"),))] == 2
        assert samples[("canaryd_decisions_total", (("action", "pause"),))] == 1
        assert samples[("canaryd_canaries", (("phase", "paused"),))] == 1
        assert samples[("canaryd_canaries", (("phase", "running"),))] == 1
        assert samples[("canaryd_webhook_deliveries_total", (("outcome", "delivered"),))] == 1


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
        """Each operation: described responses, its path parameters, bearer auth if mutating."""
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
                mutating = method in {"put", "delete"} or (
                    method == "post" and not path.endswith("/validate")
                )
                assert ("security" in op) is mutating, (path, method)
