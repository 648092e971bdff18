"""The HTTP API's health, readiness and /metrics endpoints.

The API on loopback through aiohttp's TestClient, wired as Daemon.build wires it (the ``api``
fixture, :mod:`support.apiserver`): a real SQLite store, catalog and fleet, and a Scheduler that
the tests wake by hand."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from analyzer.telemetry import Telemetry
from support.apiserver import Api, auth


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
