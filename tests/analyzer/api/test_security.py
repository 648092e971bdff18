"""Security of the running daemon, wired by ``Daemon.build`` from CANARYD_ settings on loopback:
bearer tokens and their scopes, the webhook host allow-list, PromQL that no request can alter
(checked on the queries a fake Prometheus receives), and logs free of tokens and secrets."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from analyzer.api import auth as api_auth
from analyzer.daemon import Daemon
from analyzer.errors import InvalidInput
from analyzer.settings import Settings, load_settings
from analyzer.sources.promql.parse import CounterQuery, GaugeQuery, HistogramQuery, Query, parse
from analyzer.webhooks.message import sign
from support.configs import config_body
from support.fakes import SteppedClock, auth, registration
from support.loopback import WEBHOOK_SECRET, WebhookReceiver

ROOT = "root-tok-5be0c1d7a9"
ACT = "act-tok-0f3e8a2d"
CONFIG = "cfg-tok-77a1c9e4"
REGISTER = "reg-tok-3d5b6f10"
API_TOKENS = f"{ROOT},act@{ACT},config@{CONFIG},register@{REGISTER}"
SCOPED = {"act": ACT, "config": CONFIG, "register": REGISTER}
EVERY_TOKEN = (ROOT, ACT, CONFIG, REGISTER)
STEP = 60.0

Daemonised = Callable[..., Any]


class FakePrometheus:
    """Records every range query's text and answers with an empty matrix."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        app = web.Application()
        app.router.add_get("/api/v1/query_range", self._query_range)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    async def _query_range(self, request: web.Request) -> web.Response:
        self.queries.append(request.query["query"])
        empty = {"status": "success", "data": {"resultType": "matrix", "result": []}}
        return web.json_response(empty)

    @property
    def url(self) -> str:
        """The base URL."""
        return str(self.server.make_url("")).rstrip("/")


@dataclass(slots=True, kw_only=True)
class Running:
    """A started daemon: its settings, fake clock and an HTTP client."""

    settings: Settings
    clock: SteppedClock
    client: TestClient[web.Request, web.Application]

    async def register(self, token: str = ROOT, **changes: Any) -> dict[str, Any]:
        """Register a canary; asserts 201."""
        response = await self.client.post(
            "/api/v1/canaries", json=registration(**changes), headers=auth(token)
        )
        body: dict[str, Any] = await response.json()
        assert response.status == 201, body
        return body

    async def phases(self) -> Counter[str]:
        """How many canaries are in each phase."""
        listed = await (await self.client.get("/api/v1/canaries")).json()
        return Counter(c["phase"] for c in listed)


async def eventually(check: Callable[[], Awaitable[bool]], *, limit: int = 500) -> None:
    """Wait (bounded, 10 ms apart) until ``check()`` holds; the daemon's tasks run meanwhile."""
    for _ in range(limit):
        if await check():
            return
        await asyncio.sleep(0.01)
    msg = f"not reached after {limit} polls"
    raise AssertionError(msg)


@pytest.fixture
async def prometheus() -> AsyncIterator[FakePrometheus]:
    """A recording fake Prometheus on loopback."""
    fake = FakePrometheus()
    await fake.server.start_server()
    yield fake
    await fake.server.close()


@pytest.fixture
def start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus: FakePrometheus
) -> Daemonised:
    """Start ``Daemon.build()``'s app from CANARYD_ variables (allowed hosts as given)."""
    configs = tmp_path / "configs"
    configs.mkdir(exist_ok=True)
    (configs / "test-golden.json").write_text(json.dumps(config_body()))

    @asynccontextmanager
    async def started(allowed_hosts: str) -> AsyncIterator[Running]:
        env = {
            "CANARYD_API_TOKENS": API_TOKENS,
            "CANARYD_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CANARYD_WEBHOOK_ALLOWED_HOSTS": allowed_hosts,
            "CANARYD_PROMETHEUS_URL": prometheus.url,
            "CANARYD_DATABASE_URL": f"sqlite:///{tmp_path / 'canaryd.db'}",
            "CANARYD_CONFIG_DIR": str(configs),
            "CANARYD_PUBLIC_URL": "http://canaryd.test",
            "CANARYD_SOURCE_TIMEOUT_S": "2",
            "CANARYD_WEBHOOK_TIMEOUT_S": "2",
            "CANARYD_SHUTDOWN_GRACE_S": "2",
            "CANARYD_MAX_BODY_BYTES": "65536",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        clock = SteppedClock()
        app = Daemon(settings, clock=clock).build()
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            yield Running(settings=settings, clock=clock, client=client)

    return started


# -- bearer tokens ----------------------------------------------------------------------------
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
        OpenAPI document."""
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
        assert secured == {(m, p) for m, p, _ in MUTATING}
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


# -- webhook hosts ----------------------------------------------------------------------------
REFUSED_WEBHOOKS = {
    "other-host": "https://evil.example/hooks/canary",
    "suffix": "https://deploy.internal.evil.example/hooks",
    "host-in-path": "https://evil.example/deploy.internal",
    "userinfo": "https://deploy.internal@evil.example/hooks",
    "userinfo-only": "https://user:pw@deploy.internal/hooks",
    "backslash": "https://deploy.internal\\@evil.example/",
    "whitespace": "https://deploy.internal /hooks",
    "scheme": "ftp://deploy.internal/hooks",
    "other-port": "http://127.0.0.1:1/hooks",
    "link-local": "http://169.254.10.1/hooks",
    "link-local-v6": "http://[fe80::1]/hooks",
    "link-local-v6-zone": "http://[fe80::1%25eth0]/hooks",
    "metadata-ip": "http://169.254.169.254/latest/meta-data/",
    "metadata-ip-mapped": "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "metadata-decimal": "http://2852039166/latest/meta-data/",
    "metadata-hex": "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
    "metadata-short": "http://169.254.43518/latest/meta-data/",
    "metadata-aws-v6": "http://[fd00:ec2::254]/latest/meta-data/",
    "metadata-gce": "http://metadata.google.internal/computeMetadata/v1/",
    "metadata-gce-dot": "http://metadata.google.internal./computeMetadata/v1/",
    "metadata-gce-upper": "http://METADATA.Google.Internal/computeMetadata/v1/",
}
ALWAYS_REFUSED = {k: v for k, v in REFUSED_WEBHOOKS.items() if k.startswith(("link", "metadata"))}


class TestWebhookHosts:
    """Webhook URLs are limited to CANARYD_WEBHOOK_ALLOWED_HOSTS; link-local and cloud metadata
    addresses never pass, even when the list allows every host."""

    async def test_refused_with_422_naming_webhook_url(self, start: Daemonised) -> None:
        """Every URL of the table is refused; nothing is registered."""
        async with start("deploy.internal,127.0.0.1:9,169.254.169.254") as daemon:
            for name, url in REFUSED_WEBHOOKS.items():
                response = await daemon.client.post(
                    "/api/v1/canaries", json=registration(webhook={"url": url}), headers=auth(ROOT)
                )
                body = await response.json()
                assert response.status == 422, (name, body)
                assert body["field"] == "webhook.url", (name, body)
            assert await daemon.phases() == Counter()

    async def test_wildcard_still_refuses_internal_addresses(self, start: Daemonised) -> None:
        """With ``*`` any public host is fine, but never link-local or metadata."""
        async with start("*") as daemon:
            for name, url in ALWAYS_REFUSED.items():
                response = await daemon.client.post(
                    "/api/v1/canaries", json=registration(webhook={"url": url}), headers=auth(ROOT)
                )
                body = await response.json()
                assert (response.status, body["field"]) == (422, "webhook.url"), (name, body)
            await daemon.register(webhook={"url": "https://hooks.example.org/canary"})

    async def test_allowed_hosts_register(self, start: Daemonised) -> None:
        """Hosts on the list (by name, or host:port) are accepted."""
        async with start("deploy.internal, 127.0.0.1:8443") as daemon:
            await daemon.register(webhook={"url": "https://deploy.internal/hooks"})
            await daemon.register(webhook={"url": "http://DEPLOY.internal.:8080/hooks"})
            await daemon.register(webhook={"url": "http://127.0.0.1:8443/hooks"})
            assert (await daemon.phases()).total() == 3


# -- PromQL -----------------------------------------------------------------------------------
HOSTILE_VALUES = {
    "close-and-or": 'x"} or vector(1) or up{a="',
    "escaped-quote": 'x\\"} or vector(1) #',
    "trailing-backslash": "abc\\",
    "backslash-quote": 'a\\\\"b',
    "braces": "}{",
    "range": "[5m]) or on() vector(1",
    "regex-matcher": '=~".*"',
    "comment": "# rest of the query",
    "newline": "new\nline\r\ttab",
    "controls": "\x01\x1b[31m\x7f",
    "placeholder": "${selector}",
    "dollars": "$$ ${step} $",
    "quotes": "'single' `back`",
    "unicode": "ünïcødé ☃ \u2028 \U0001f600",
    "regex-meta": ".*",
    "long": "q" * 1024,
}
HOSTILE_NAMES = {
    "quote": 'a"',
    "reserved": "__name__",
    "dash": "a-b",
    "digit-first": "1a",
    "space": "a b",
    "brace": "a{",
    "injection": 'deployment="x"} or vector(1) or up{a',
    "trailing-newline": "deployment\n",
    "non-ascii": "dé",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def skeleton(text: str) -> str:
    """A query with every double-quoted string emptied: its structure, by a regex independent
    of the parser."""
    return _STRING.sub('""', text)


def _intended(template: str, labels: dict[str, str], step: str) -> tuple[str, set[tuple[str, ...]]]:
    """The skeleton and matchers a template should become for a side with ``labels``."""
    names = ",".join(f'{name}=""' for name in sorted(labels))
    text = template.replace("${selector}", names).replace("${step}", step)
    for name, value in config_body().get("variables", {}).items():
        text = text.replace(f"${{{name}}}", value)
    parsed = parse(text.replace('""', '"x"'))
    own = {(m.name, m.op, m.value) for m in parsed.selector.matchers if m.name not in labels}
    return skeleton(text), own | {(name, "=", value) for name, value in labels.items()}


def _matchers(query: Query) -> set[tuple[str, ...]]:
    return {(m.name, m.op, m.value) for m in query.selector.matchers}


class TestPromqlCannotBeAltered:
    """Label names are validated and values escaped: what reaches Prometheus has exactly the
    intended matchers."""

    async def test_hostile_label_values_reach_prometheus_as_plain_values(
        self, start: Daemonised, prometheus: FakePrometheus
    ) -> None:
        """Each hostile value registered over the API comes out, after one tick, as one
        ``=`` matcher holding it byte for byte, in a query shaped like its template."""
        async with start("deploy.internal") as daemon:
            sides = {}
            for name, value in HOSTILE_VALUES.items():
                labels = {"deployment": value, "zone": value[::-1] or "z"}
                created = await daemon.register(name=f"hostile-{name}", canary={"labels": labels})
                sides[created["id"]] = labels

            async def all_running() -> bool:
                return (await daemon.phases())["running"] == len(sides)

            await eventually(all_running)
            await daemon.clock.jump_to(daemon.clock.now() + STEP)
            expected_count = len(sides) * 2 * 3  # 2 sides × (events, exposure, latency)

            async def all_fetched() -> bool:
                return len(prometheus.queries) >= expected_count

            await eventually(all_fetched)
        metrics = config_body()["metrics"]
        templates = [*metrics[0]["query"].values(), metrics[1]["query"]]
        expected: Counter[tuple[str, frozenset[tuple[str, ...]]]] = Counter()
        baseline = registration()["baseline"]["labels"]
        for labels in [*sides.values(), *[baseline] * len(sides)]:
            for template in templates:
                shape, matchers = _intended(template, labels, "60s")
                expected[(shape, frozenset(matchers))] += 1
        sent: Counter[tuple[str, frozenset[tuple[str, ...]]]] = Counter()
        for text in prometheus.queries:
            query = parse(text)
            assert isinstance(query, CounterQuery | HistogramQuery | GaugeQuery)
            sent[(skeleton(text), frozenset(_matchers(query)))] += 1
        assert sent == expected

    @pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
    async def test_hostile_label_names_are_refused(self, start: Daemonised, name: str) -> None:
        """A label name that is not [A-Za-z_][A-Za-z0-9_]* (or is reserved): 422 naming the
        side's labels; nothing is registered or queried."""
        async with start("deploy.internal") as daemon:
            labels = {"deployment": "checkout-canary", name: "x"}
            response = await daemon.client.post(
                "/api/v1/canaries", json=registration(canary={"labels": labels}), headers=auth(ROOT)
            )
            body = await response.json()
            assert response.status == 422, body
            assert body["field"].startswith("canary.labels"), body
            assert await daemon.phases() == Counter()

    @pytest.mark.parametrize(
        "value", ["total or up", "total/up", "total-up", "total offset 1h", "total unless up"]
    )
    async def test_variables_used_bare_cannot_change_the_query(
        self, start: Daemonised, value: str
    ) -> None:
        """A per-canary variable that a template uses outside quotes may hold only name and
        number characters: operators and keywords are refused, naming the variable."""
        config = config_body(name="by-kind", variables={"kind": "total", "job": "api"})
        config["metrics"][0]["query"] = {
            "events": 'sum(increase(http_requests_${kind}{code=~"5..",${selector}}[${step}]))',
            "exposure": 'sum(increase(http_requests_${kind}{job="${job}",${selector}}[${step}]))',
        }
        async with start("deploy.internal") as daemon:
            put = await daemon.client.put(
                "/api/v1/configs/by-kind", json=config, headers=auth(ROOT)
            )
            assert put.status == 200, await put.json()
            response = await daemon.client.post(
                "/api/v1/canaries",
                json=registration(config="by-kind", variables={"kind": value}),
                headers=auth(ROOT),
            )
            body = await response.json()
            assert (response.status, body["field"]) == (422, "variables.kind"), body
            quoted = await daemon.client.post(
                "/api/v1/canaries",
                json=registration(config="by-kind", variables={"job": "api gw/v2.1-x"}),
                headers=auth(ROOT),
            )
            assert quoted.status == 201, await quoted.json()


# -- logs -------------------------------------------------------------------------------------
class EchoingReceiver:
    """A webhook receiver that refuses (400) and echoes the signature and the secret back, as a
    misconfigured deploy system might."""

    def __init__(self) -> None:
        self.signatures: list[str] = []
        app = web.Application()
        app.router.add_post("/hooks/echo", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    async def _handle(self, request: web.Request) -> web.Response:
        signature = request.headers["X-Canaryd-Signature-256"]
        self.signatures.append(signature)
        text = f"bad signature {signature}; expected key {WEBHOOK_SECRET}"
        return web.Response(status=400, text=text)


@pytest.mark.usefixtures("default_logging")
class TestSecretsStayOutOfLogs:
    """Neither API tokens nor the webhook secret (nor signatures made with it) are logged."""

    async def test_no_token_or_secret_in_any_event(
        self, start: Daemonised, webhook_receiver: WebhookReceiver
    ) -> None:
        """Settings load, start-up, registrations with tokens (good and bad), an action, a
        signed delivery and a refused one whose receiver echoes the secret: no event holds a
        token, the secret or a signature."""
        echo = EchoingReceiver()
        await echo.server.start_server()
        allowed = f"deploy.internal,{webhook_receiver.host},127.0.0.1:{echo.server.port}"
        try:
            with capture_logs() as events:
                async with start(allowed) as daemon:
                    good = await daemon.register(
                        REGISTER, webhook={"url": webhook_receiver.url}, name="delivered"
                    )
                    echoed = await daemon.register(
                        ROOT, webhook={"url": str(echo.server.make_url("/hooks/echo"))}
                    )
                    wrong = await daemon.client.post(
                        "/api/v1/canaries", json=registration(), headers=auth(ROOT + "x")
                    )
                    assert wrong.status == 401
                    for canary in (good, echoed):
                        response = await daemon.client.post(
                            f"/api/v1/canaries/{canary['id']}/promote", headers=auth(ACT)
                        )
                        assert response.status == 200

                    async def both_sent() -> bool:
                        await daemon.clock.advance(1.0)
                        return bool(webhook_receiver.attempts) and bool(echo.signatures)

                    await eventually(both_sent)

                    async def both_settled() -> bool:
                        listed = await (await daemon.client.get("/api/v1/canaries")).json()
                        states = set()
                        for canary in listed:
                            one = await daemon.client.get(f"/api/v1/canaries/{canary['id']}")
                            states |= {d["state"] for d in (await one.json())["deliveries"]}
                        return states == {"delivered", "failed"}

                    await eventually(both_settled)
        finally:
            await echo.server.close()
        assert webhook_receiver.attempts[0].signed
        names = {e["event"] for e in events}
        assert {"daemon.started", "canary.registered", "decision.made"} <= names
        assert {"webhook.delivered", "webhook.failed"} <= names
        failed = next(e for e in events if e["event"] == "webhook.failed")
        assert failed["err"].startswith("HTTP 400: bad signature sha256=[redacted]")
        signatures = [*echo.signatures, sign(webhook_receiver.attempts[0].body, WEBHOOK_SECRET)]
        hexes = [s.removeprefix("sha256=") for s in signatures]
        text = repr(events)
        for secret in (*EVERY_TOKEN, WEBHOOK_SECRET, *hexes):
            assert secret not in text, secret
