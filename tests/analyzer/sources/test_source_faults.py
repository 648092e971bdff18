"""Metric-source faults end to end: the scheduler loop with the real PrometheusSource against a
fake Prometheus on loopback whose behaviour each phase switches — down, slow, 5xx, malformed
JSON, empty, NaN/±Inf, several series. Each faulty tick is verdict ``none`` with its cause, the
loop keeps running, missing data alone never rolls back (``on_no_data: hold``), ``on_no_data:
rollback`` does, analysis resumes when the data returns, and /metrics counts the errors."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from analyzer.api.app import build_app
from analyzer.api.auth import parse_tokens
from analyzer.api.context import ApiContext
from analyzer.configs.judgeconfig import JudgeConfig
from analyzer.metricdata import FloatArray
from analyzer.model import Canary, Mode, Phase, Stage
from analyzer.sources.prometheus import PrometheusSource
from analyzer.sources.promql.parse import CounterQuery, HistogramQuery, parse
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from support.configs import BASE_CONFIG
from support.fakes import T0, MakeConfig, SteppedClock
from support.loopback import Client, client
from support.prometheus import FakePrometheus, Fault
from support.queries import STEP
from support.scheduling import Daemon as Scheduling
from support.scheduling import Running

SOURCE_TIMEOUT_S = 0.25
ROOT = "root-7d1f"
READ = {"Authorization": f"Bearer {ROOT}"}
"""Reads bear the token too (a daemon may keep its reads private)."""

CAUSES = {
    Fault.DOWN: "connection failed",
    Fault.SLOW: f"timed out after {SOURCE_TIMEOUT_S:g}s",
    Fault.SERVER_ERROR: "HTTP 503: internal: storage unavailable",
    Fault.MALFORMED: "malformed JSON in the response",
    Fault.EMPTY: "empty result",
    Fault.NOT_FINITE: "were NaN or ±Inf",
    Fault.SEVERAL_SERIES: "series with different labels",
}
"""The cause each fault must leave in the tick's reason and results."""


def _noise(at: float, side: str, role: str) -> float:
    """A standard normal draw fixed by (time, side, role): the same across windows."""
    seed = [int(at), sum(side.encode()), sum(role.encode())]
    return float(np.random.default_rng(seed).standard_normal())


def _healthy_value(query: str, at: float) -> float:
    """Identical traffic on both sides: ~1 % errors of 1000 requests, p99 ~200 ms."""
    parsed = parse(query)
    labels = {m.name: m.value for m in parsed.selector.matchers}
    side = labels["deployment"]
    if isinstance(parsed, HistogramQuery):
        return 0.2 * (1.0 + 0.05 * _noise(at, side, "latency"))
    assert isinstance(parsed, CounterQuery)
    if "code" in labels:
        return max(0.0, round(10.0 + math.sqrt(10.0) * _noise(at, side, "events")))
    return 1000.0


def healthy(query: str, times: FloatArray) -> FloatArray:
    """The fake Prometheus' answer while it is healthy: :func:`_healthy_value` at each step."""
    return np.array([_healthy_value(query, float(t)) for t in times])


@dataclass(slots=True, kw_only=True)
class Daemon:
    """Fleet and scheduler with the real PrometheusSource, the fake it queries, and the API
    for /metrics."""

    scheduling: Scheduling
    prometheus: FakePrometheus
    client: Client
    loops: contextlib.AsyncExitStack
    """Where :meth:`start` enters the loop, so it is stopped when the test ends."""
    loop: Running | None = None

    @property
    def store(self) -> SqliteStore:
        """The daemon's store."""
        return self.scheduling.store

    async def register(self, config: JudgeConfig, *, stage_s: float) -> Canary:
        """A dry-run canary (no webhook) of one stage of ``stage_s`` before 100 %."""
        stages = (Stage(weight=10, duration_s=stage_s), Stage(weight=100, duration_s=0))
        return await self.scheduling.register(
            config, "checkout-canary", stages=stages, mode=Mode.DRY_RUN
        )

    async def start(self) -> None:
        """Run the scheduler loop until it is parked on the clock."""
        self.loop = await self.loops.enter_async_context(Running(self.scheduling))

    async def tick_at(self, at: float) -> None:
        """Jump the clock to ``at`` and let the loop tick and park again."""
        assert self.loop is not None
        await self.loop.jump(at)
        assert self.loop.task is not None
        assert not self.loop.task.done(), "the scheduler loop ended"

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The daemon's /metrics samples by (name, labels)."""
        response = await self.client.get("/metrics", headers=READ)
        assert response.status == 200
        text = await response.text()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def canary(self, canary_id: str) -> dict[str, Any]:
        """GET /api/v1/canaries/{id}: state with every tick and decision."""
        response = await self.client.get(f"/api/v1/canaries/{canary_id}", headers=READ)
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body


@pytest.fixture
async def daemon(
    store: SqliteStore,
    clock: SteppedClock,
    telemetry: Telemetry,
    session: aiohttp.ClientSession,
) -> AsyncIterator[Daemon]:
    """The daemon's loop over a fake Prometheus (healthy until a test switches it)."""
    prometheus = FakePrometheus(healthy)
    source = PrometheusSource(prometheus.url, session, timeout_s=SOURCE_TIMEOUT_S)
    scheduling = Scheduling(store, clock, telemetry, source)
    ctx = ApiContext(
        fleet=scheduling.fleet,
        telemetry=telemetry,
        tokens=parse_tokens([ROOT]),
        allowed_hosts=[],
        scrape_mode=False,
        ready=True,
    )
    async with (
        prometheus,
        client(build_app(ctx)) as api,
        contextlib.AsyncExitStack() as loops,
    ):
        running = Daemon(scheduling=scheduling, prometheus=prometheus, client=api, loops=loops)
        try:
            yield running
        finally:
            await prometheus.switch(Fault.HEALTHY)  # held slow answers go out; the loop drains


FAULTS = list(CAUSES)
TICKS_PER_FAULT = 2


class TestSourceFaults:
    """Every kind of source fault holds the canary with verdict none and its cause."""

    async def test_faults_hold_then_analysis_resumes(
        self, daemon: Daemon, make_config: MakeConfig
    ) -> None:
        """Each fault's ticks are verdict none naming the cause; no decision is taken; once the
        data returns the canary is judged again and promoted at the end of its stage."""
        fault_ticks = len(FAULTS) * TICKS_PER_FAULT
        first_fault = T0 + 2 * STEP
        recovered = first_fault + fault_ticks * STEP
        stage_s = recovered + 10 * STEP - T0
        canary = await daemon.register(make_config(on_no_data="hold"), stage_s=stage_s)
        await daemon.start()  # T0: analysis starts
        await daemon.tick_at(T0 + STEP)  # one healthy poll
        at = first_fault
        for fault in FAULTS:
            await daemon.prometheus.switch(fault)
            for _ in range(TICKS_PER_FAULT):
                await daemon.tick_at(at)
                at += STEP
            state = await daemon.canary(canary.id)
            assert (state["phase"], state["decisions"]) == ("running", []), fault
            assert (await daemon.client.get("/healthz")).status == 200
        while_faulty = await daemon.metrics()
        await daemon.prometheus.switch(Fault.HEALTHY)
        while at <= T0 + stage_s:
            await daemon.tick_at(at)
            at += STEP

        body = await daemon.canary(canary.id)
        ticks = {round(t["at"] - T0): t for t in body["ticks"]}
        assert ticks[STEP]["verdict"] == "running"
        for k, fault in enumerate(FAULTS):
            for j in range(TICKS_PER_FAULT):
                tick = ticks[round(first_fault - T0 + (k * TICKS_PER_FAULT + j) * STEP)]
                assert tick["verdict"] == "none", (fault, tick)
                assert tick["reason"].startswith("no data, holding: "), (fault, tick)
                assert CAUSES[fault] in tick["reason"], (fault, tick["reason"])
                assert CAUSES[fault] in tick["results"]["no_data"], fault
                for metric in ("error_rate", "latency_p99"):
                    assert metric in tick["reason"], (fault, tick["reason"])
        after = [t for at_s, t in sorted(ticks.items()) if at_s >= recovered - T0]
        assert {t["verdict"] for t in after[:-1]} == {"running"}
        assert any(t["score"] is not None for t in after[:-1])
        assert after[-1]["verdict"] == "pass"
        assert [(d["action"], d["decided_at"] - T0) for d in body["decisions"]] == [
            ("promote", stage_s)
        ]
        assert body["phase"] == "promoted"

        samples = await daemon.metrics()
        for metric in ("error_rate", "latency_p99"):
            errors = while_faulty[("canaryd_source_errors_total", (("metric", metric),))]
            assert errors == fault_ticks, metric
        # the canary has finished: the label values only it used are gone from /metrics
        assert not [k for k in samples if k[0] == "canaryd_source_errors_total"]
        assert samples[("canaryd_ticks_total", (("verdict", "none"),))] == fault_ticks
        assert ("canaryd_decisions_total", (("action", "rollback"),)) not in samples

    @pytest.mark.parametrize("fault", FAULTS)
    async def test_no_data_rollback_config_rolls_back(
        self, daemon: Daemon, make_config: MakeConfig, fault: Fault
    ) -> None:
        """With on_no_data: rollback, the first poll without data rolls back, naming the cause."""
        canary = await daemon.register(make_config(on_no_data="rollback"), stage_s=3600)
        await daemon.start()
        await daemon.prometheus.switch(fault)
        await daemon.tick_at(T0 + STEP)
        body = await daemon.canary(canary.id)
        assert body["phase"] == "rolled_back"
        assert [d["action"] for d in body["decisions"]] == ["rollback"]
        reason = body["decisions"][0]["reason"]
        assert reason.startswith("no data: ")
        assert CAUSES[fault] in reason
        assert body["ticks"][-1]["verdict"] == "fail"
        stored = await daemon.store.get_canary(canary.id)
        assert stored is not None
        assert stored.phase is Phase.ROLLED_BACK
        assert canary.id not in daemon.scheduling.fleet.canaries

    async def test_partial_fault_is_judged_with_the_metric_nodata(
        self, daemon: Daemon, make_config: MakeConfig
    ) -> None:
        """One of three metrics returns several series: the poll is judged (not none), that
        metric is Nodata with its cause, the others carry the score, and nothing rolls back."""
        metrics = [*BASE_CONFIG["metrics"], {**BASE_CONFIG["metrics"][1], "name": "latency_p50"}]
        metrics[2]["query"] = metrics[2]["query"].replace("0.99", "0.5")
        canary = await daemon.register(make_config(metrics=metrics), stage_s=3600)
        await daemon.start()
        await daemon.prometheus.switch(Fault.SEVERAL_SERIES, only="histogram_quantile(0.99")
        for k in range(1, 6):
            await daemon.tick_at(T0 + k * STEP)
        body = await daemon.canary(canary.id)
        assert {t["verdict"] for t in body["ticks"]} == {"running"}
        scored = body["ticks"][-1]
        assert scored["score"] == 100
        judged = {m["name"]: m for m in scored["results"]["metrics"]}
        assert judged["latency_p99"]["label"] == "Nodata"
        assert CAUSES[Fault.SEVERAL_SERIES] in judged["latency_p99"]["reason"]
        assert (judged["error_rate"]["label"], judged["latency_p50"]["label"]) == ("Pass", "Pass")
        assert (body["phase"], body["decisions"]) == ("running", [])
