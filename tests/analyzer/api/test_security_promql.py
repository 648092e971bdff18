"""Security of the running daemon: PromQL that no request can alter, checked on the queries a
fake Prometheus receives.

The daemon is wired by ``Daemon.build`` from CANARYD_ settings on loopback (the ``start``
fixture, :mod:`support.secured`)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from analyzer.sources.promql.parse import CounterQuery, GaugeQuery, HistogramQuery, Query, parse
from support.configs import config_body
from support.fakes import auth, registration
from support.inprocess import eventually
from support.prometheus import FakePrometheus
from support.secured import ROOT, STEP, Daemonised, phases, register

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
                created = await register(daemon, name=f"hostile-{name}", canary={"labels": labels})
                sides[created["id"]] = labels

            async def all_running() -> bool:
                return (await phases(daemon))["running"] == len(sides)

            await eventually(all_running, what="every hostile canary running")
            await daemon.clock.jump_to(daemon.clock.now() + STEP)
            expected_count = len(sides) * 2 * 3  # 2 sides × (events, exposure, latency)

            async def all_fetched() -> bool:
                return len(prometheus.queries) >= expected_count

            await eventually(all_fetched, what="every query of one tick fetched")
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
            assert await phases(daemon) == Counter()

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
