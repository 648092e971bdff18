"""Property-based tests of the HTTP API against its own ``/openapi.json`` with schemathesis:
every operation, valid and invalid inputs, with and without a token; no 5xx, and every response
conforms to the document (status code, content type, body schema, headers). Plus the input
edges the document promises: 413 for oversize bodies, 400 for what is not JSON, and 422 naming
the field for bad judge configs.

Schemathesis calls are blocking (requests), so the app runs on 127.0.0.1:0 in a thread with
its own event loop, wired as in ``test_api``: a real SQLite store, catalog and fleet.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analyzer.api.app import ApiContext, build_app
from analyzer.api.auth import parse_tokens
from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import parse_config
from analyzer.model import Window
from analyzer.sources.protocol import FetchRequest
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from analyzer.tick.fleet import Fleet
from analyzer.tick.scheduler import Scheduler
from support import fakes
from support.configs import config_body
from support.fakes import T0, FakeSource, SteppedClock, Traffic
from support.loopback import serving

ROOT = "root-7d1f"
TOKENS = [ROOT, "act@act-2b9c", "register@reg-51aa", "config@cfg-90de"]
MAX_BODY = 64 * 1024
ON_FIRE = Traffic(error_rate={"baseline": 0.01, "canary": 0.5})
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 25}
"""Hypothesis examples per operation and mode (fewer when an operation has fewer inputs)."""
SEEDED_EXAMPLES = 5
SEEDED_ORDER = [
    "GET /api/v1/canaries/{id}",
    "GET /api/v1/canaries/{id}/verdict",
    "POST /api/v1/canaries/{id}/pause",
    "POST /api/v1/canaries/{id}/resume",
    "POST /api/v1/canaries/{id}/promote",
]
"""Operations run again on the seeded canaries, in an order that lets most of them succeed
(abort gets a canary of its own: after promote none is left to abort)."""
UNAUTHENTICATED_EXAMPLES = 10
MIN_AUTHENTICATED = 450
MIN_UNAUTHENTICATED = 60
"""Floors on the cases actually run: together at least 500."""


def auth(token: str = ROOT) -> dict[str, str]:
    """The Authorization header of a bearer token (the root one unless given)."""
    return fakes.auth(token)


def registration(**changes: Any) -> dict[str, Any]:
    """A valid dry-run registration (no webhook) with top-level keys replaced."""
    body = fakes.registration(mode="dry-run")
    del body["webhook"]
    return body | changes


@dataclass(slots=True)
class ThreadedApi:
    """The API app on 127.0.0.1:0, served by an event loop in a thread of its own."""

    db_path: Path
    base_url: str = ""
    clock: SteppedClock = field(default_factory=SteppedClock)
    scheduler: Scheduler | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> None:
        """Start serving; returns once the port is bound."""
        self._thread = threading.Thread(target=self._run, name="api", daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the API did not start"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def wake_at(self, at: float) -> None:
        """On the server's loop: jump the clock to ``at`` and tick whatever is due."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._wake_at(at), self._loop).result(10)

    async def _wake_at(self, at: float) -> None:
        assert self.scheduler is not None
        await self.clock.jump_to(at)
        batch = self.scheduler.due(at)
        if batch:
            await self.scheduler.tick_batch(batch, at)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # noqa: BLE001 — surfaced by start() in the test's thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        store = SqliteStore(str(self.db_path))
        await store.open()
        clock = self.clock
        catalog = Catalog(store, clock)
        await catalog.put(parse_config(config_body()))
        telemetry = Telemetry()
        fleet = Fleet(store, catalog, clock, telemetry, public_url="http://canaryd.test")
        self.scheduler = Scheduler(fleet, FakeSource(_traffic), clock)
        telemetry.watch_phases(fleet.phase_counts)
        ctx = ApiContext(
            fleet=fleet,
            telemetry=telemetry,
            tokens=parse_tokens(TOKENS),
            allowed_hosts=["deploy.internal"],
            scrape_mode=False,
            ready=True,
        )
        try:
            async with serving(build_app(ctx, max_body_bytes=MAX_BODY)) as server:
                self.base_url = str(server.make_url("")).rstrip("/")
                self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
                self._ready.set()
                await self._stop.wait()
        finally:
            await store.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedApi]:
    """The app served for the whole module, with one registered canary and one paused."""
    server = ThreadedApi(tmp_path_factory.mktemp("schemathesis") / "canaryd.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http(api: ThreadedApi) -> Iterator[requests.Session]:
    """One blocking HTTP session for the module."""
    with requests.Session() as session:
        yield session


def _traffic(request: FetchRequest) -> Window:
    fire = request.canary.labels["deployment"] == "on-fire"
    return (ON_FIRE if fire else Traffic())(request)


SEEDS = {
    "live": registration(mode="live", webhook={"url": "https://deploy.internal/hooks"}),
    "fire": registration(
        mode="live",
        webhook={"url": "https://deploy.internal/hooks"},
        canary={"labels": {"deployment": "on-fire"}},
    ),
    "judged": registration(),
    "paused": registration(),
}
"""Canaries that exist before the generated cases: in warm-up, rolled back by the kill-switch
(ticks, decision, pending delivery), scored at an interval, and paused."""


@pytest.fixture(scope="module")
def canary_ids(api: ThreadedApi, http: requests.Session) -> list[str]:
    """Ids of canaries in several states, so generated requests also meet real ones."""
    ids = {}
    for name, body in SEEDS.items():
        response = http.post(
            f"{api.base_url}/api/v1/canaries", json=body | {"name": name}, headers=auth()
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    paused = http.post(f"{api.base_url}/api/v1/canaries/{ids['paused']}/pause", headers=auth())
    assert paused.status_code == 200, paused.text
    for at in (T0, T0 + 60, T0 + 300):
        api.wake_at(at)
    fire = http.get(f"{api.base_url}/api/v1/canaries/{ids['fire']}").json()
    assert [d["state"] for d in fire["deliveries"]] == ["pending"]
    judged = http.get(f"{api.base_url}/api/v1/canaries/{ids['judged']}").json()
    assert judged["ticks"][-1]["score"] is not None
    return list(ids.values())


@pytest.fixture(scope="module")
def schema(api: ThreadedApi) -> schemathesis.BaseSchema:
    """The document as the server serves it."""
    return schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")


@dataclass(slots=True)
class Tally:
    """Cases run per operation, and the failures found."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)


def fuzz(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    tally: Tally,
    *,
    call: dict[str, Any],
    **fixed: Any,
) -> None:
    """Run ``examples`` generated cases of one operation (``fixed`` path parameters or body
    given to the strategy); count them; keep the first failure."""
    label = f"{operation.label} [{mode.value}{'' if 'headers' in call else ', no token'}]"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case: schemathesis.Case) -> None:
        tally.cases[label] += 1
        response = case.call(**call)
        tally.statuses[(operation.label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 — reported per operation
        tally.failures[label] = str(exc)[:2000]


def operations(schema: schemathesis.BaseSchema) -> list[Any]:
    """Every operation of the document."""
    return [result.ok() for result in schema.get_all_operations()]


def modes(operation: Any) -> list[GenerationMode]:
    """Valid inputs always; invalid ones where there is something to get wrong (a body or a
    query parameter: any string is a valid path parameter)."""
    if len(operation.body) or len(operation.query):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def explicit_successes(
    every: dict[str, Any], tally: Tally, call: dict[str, Any], http: requests.Session, base: str
) -> None:
    """One valid request each where random inputs hardly ever succeed (a registration, a PUT,
    a config by name, an abort), so their success responses are checked against the document
    too."""
    fresh = http.post(f"{base}/api/v1/canaries", json=registration(name="abort"), headers=auth())
    assert fresh.status_code == 201, fresh.text
    golden = {"name": "test-golden"}
    explicit: list[tuple[str, dict[str, Any]]] = [
        ("POST /api/v1/canaries/{id}/abort", {"path_parameters": {"id": fresh.json()["id"]}}),
        ("POST /api/v1/canaries", {"body": registration(name="explicit")}),
        ("PUT /api/v1/configs/{name}", {"path_parameters": golden, "body": config_body()}),
        ("GET /api/v1/configs/{name}", {"path_parameters": golden}),
    ]
    for label, fixed in explicit:
        fuzz(every[label], GenerationMode.POSITIVE, 1, tally, call=call, **fixed)


class TestSchemathesis:
    """Generated requests against /openapi.json: no 5xx, every response as documented."""

    def test_every_operation_with_a_token(
        self,
        schema: schemathesis.BaseSchema,
        api: ThreadedApi,
        http: requests.Session,
        canary_ids: list[str],
    ) -> None:
        """Every operation, valid and invalid inputs, the all-scopes token; operations on a
        canary also get the ids of canaries that exist."""
        tally = Tally()
        every = {op.label: op for op in operations(schema)}
        call = {"base_url": api.base_url, "session": http, "headers": auth()}
        for operation in every.values():
            for mode in modes(operation):
                fuzz(operation, mode, EXAMPLES[mode], tally, call=call)
        for label in SEEDED_ORDER:
            for canary_id in canary_ids:
                fuzz(
                    every[label],
                    GenerationMode.POSITIVE,
                    SEEDED_EXAMPLES,
                    tally,
                    call=call,
                    path_parameters={"id": canary_id},
                )
        explicit_successes(every, tally, call, http, api.base_url)
        assert tally.failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in tally.failures.items())
        assert {label.split(" [")[0] for label in tally.cases} == set(every)
        assert tally.cases.total() >= MIN_AUTHENTICATED, tally.cases
        succeeded = {label for label, status in tally.statuses if status < 300}
        assert succeeded == set(every), set(every) - succeeded

    def test_secured_operations_without_a_token(
        self, schema: schemathesis.BaseSchema, api: ThreadedApi, http: requests.Session
    ) -> None:
        """Every secured operation without a token: 401 as documented, never 5xx."""
        tally = Tally()
        secured = [op for op in operations(schema) if op.definition.raw.get("security")]
        assert len(secured) == 6
        for operation in secured:
            for mode in modes(operation):
                call = {"base_url": api.base_url, "session": http}
                fuzz(operation, mode, UNAUTHENTICATED_EXAMPLES, tally, call=call)
        assert tally.failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in tally.failures.items())
        assert tally.cases.total() >= MIN_UNAUTHENTICATED, tally.cases
        assert {status for _, status in tally.statuses} == {401}


# -- the edges the document promises ----------------------------------------------------------
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
        api: ThreadedApi,
        http: requests.Session,
        canary_ids: list[str],
        method: str,
        path: str,
    ) -> None:
        """A body over the limit: 413 with the JSON error body."""
        url = api.base_url + path.format(id=canary_ids[0])
        big = b'{"pad": "' + b"x" * MAX_BODY + b'"}'
        response = http.request(method, url, data=big, headers=auth())
        assert _error(response, 413)["error"] == "request body too large"

    @pytest.mark.parametrize("route", BODY_ROUTES, ids=[" ".join(r) for r in BODY_ROUTES])
    @pytest.mark.parametrize("raw", NOT_JSON.values(), ids=NOT_JSON.keys())
    def test_not_json_is_400(
        self,
        api: ThreadedApi,
        http: requests.Session,
        canary_ids: list[str],
        route: tuple[str, str],
        raw: bytes,
    ) -> None:
        """Truncated JSON, Python's NaN/Infinity, lone surrogates, non-UTF-8: 400, not 5xx."""
        method, path = route
        url = api.base_url + path.format(id=canary_ids[-1])
        response = http.request(method, url, data=raw, headers=auth())
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
        self, api: ThreadedApi, http: requests.Session, change: dict[str, Any], path: str
    ) -> None:
        """PUT /api/v1/configs/{name}: 422, ``field`` is the dotted path of the bad field."""
        response = http.put(
            f"{api.base_url}/api/v1/configs/test-golden",
            json=config_body(**change),
            headers=auth(),
        )
        error = _error(response, 422)
        assert error["field"] == path, error
        assert error["detail"][0].startswith(f"{path}: "), error

    @pytest.mark.parametrize(("change", "path"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
    def test_validate_names_the_field(
        self, api: ThreadedApi, http: requests.Session, change: dict[str, Any], path: str
    ) -> None:
        """POST /api/v1/configs/validate: valid false, the first error names the field."""
        response = http.post(f"{api.base_url}/api/v1/configs/validate", json=config_body(**change))
        body = response.json()
        assert response.status_code == 200, body
        assert body["valid"] is False
        assert body["errors"][0].startswith(f"{path}: "), body
