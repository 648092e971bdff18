"""Capture: a config's metrics recorded from a fake Prometheus on loopback (the client is
synchronous, so every capture runs through ``asyncio.to_thread`` while the server runs on the
test's loop)."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from analyzer.cli import main
from analyzer.configs.judgeconfig import JudgeConfig, parse_config
from analyzer.errors import InvalidInput, SourcePayloadError, SourceUnavailable
from analyzer.offline.capture import Captured, capture
from analyzer.offline.recording import load_recording

START = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
T0 = START.timestamp()
STEP = 60.0
BASELINE = {"deployment": "checkout-baseline"}
CANARY = {"deployment": "checkout-canary"}
CONFIG: dict[str, Any] = {
    "name": "capture-test",
    "step": "60s",
    "analysis_interval": "5m",
    "variables": {"job": "http"},
    "metrics": [
        {
            "name": "error_rate",
            "kind": "count",
            "judge": "sequential-count",
            "critical": True,
            "tolerance": 1.2,
            "query": {
                "events": 'sum(increase(http_requests_total{job="${job}",code=~"5..",'
                "${selector}}[${step}]))",
                "exposure": 'sum(increase(http_requests_total{job="${job}",${selector}}[${step}]))',
            },
        },
        {
            "name": "latency_p99",
            "kind": "series",
            "judge": "mann-whitney",
            "query": "histogram_quantile(0.99, sum by (le) (rate("
            'http_request_duration_seconds_bucket{job="${job}",${selector}}[${step}])))',
        },
    ],
}

Samples = Callable[[str, float], str | None]


def golden(query: str, t: float) -> str | None:
    """Baseline 2 errors of 1000 requests per step, canary 5; p99 0.25 s and 0.30 s. The
    canary's p99 is missing at step 2 and NaN at step 3."""
    canary = 'deployment="checkout-canary"' in query
    k = round((t - T0) / STEP)
    if "histogram_quantile" in query:
        if canary and k == 2:
            return None
        return "NaN" if canary and k == 3 else ("0.3" if canary else "0.25")
    if "code=~" in query:
        return "5" if canary else "2"
    return "1000"


class FakePrometheus:
    """Prometheus' range-query API on 127.0.0.1, recording every request it gets."""

    def __init__(self, samples: Samples = golden) -> None:
        self.samples = samples
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.reply: Callable[[web.Request], web.Response] | None = None
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        if request.path != "/api/v1/query_range":
            return web.json_response({"status": "error", "error": "not found"}, status=404)
        if self.reply is not None:
            return self.reply(request)
        start, end = float(request.query["start"]), float(request.query["end"])
        step = float(request.query["step"])
        query = request.query["query"]
        values = []
        for k in range(math.floor((end - start) / step) + 1):
            value = self.samples(query, start + k * step)
            if value is not None:
                values.append([start + k * step, value])
        result = [{"metric": {}, "values": values}] if values else []
        return web.json_response(
            {"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def queries(self) -> list[str]:
        return [params["query"] for _, params in self.requests]


@pytest.fixture
async def prometheus() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus()
    await fake.server.start_server()
    yield fake
    await fake.server.close()


def config() -> JudgeConfig:
    return parse_config(CONFIG)


async def run_capture(prom: FakePrometheus, **overrides: Any) -> Captured:
    kwargs: dict[str, Any] = {
        "prometheus_url": prom.url,
        "baseline": BASELINE,
        "canary": CANARY,
        "start": START,
        "end": START + timedelta(minutes=9),
        "name": "checkout-0001",
        "retries": 0,
    } | overrides
    return await asyncio.to_thread(capture, config(), **kwargs)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestCapture:
    async def test_records_every_metric_on_the_grid(self, prometheus: FakePrometheus) -> None:
        """Both sides of every template are recorded, one value per step."""
        rec = (await run_capture(prometheus)).recording
        assert (rec.name, rec.start, rec.step_s, rec.steps) == ("checkout-0001", T0, STEP, 10)
        errors = rec.metrics["error_rate"]
        np.testing.assert_array_equal(errors.baseline.events, np.full(10, 2.0))
        np.testing.assert_array_equal(errors.canary.events, np.full(10, 5.0))
        np.testing.assert_array_equal(errors.canary.exposure, np.full(10, 1000.0))
        np.testing.assert_array_equal(rec.metrics["latency_p99"].baseline.values, [0.25] * 10)
        assert rec.truth is None

    async def test_missing_and_nan_samples_are_null(self, prometheus: FakePrometheus) -> None:
        """A step without a sample and a NaN sample are both recorded as missing."""
        rec = (await run_capture(prometheus)).recording
        p99 = rec.metrics["latency_p99"].canary.values
        assert np.isnan(p99[[2, 3]]).all()
        assert np.isfinite(np.delete(p99, [2, 3])).all()

    async def test_queries_are_rendered_per_side(self, prometheus: FakePrometheus) -> None:
        """Each side's labels are escaped into the selector; variables and the step are filled;
        only the range-query endpoint is called, at whole-second bounds and the step."""
        await run_capture(prometheus, variables={"job": "api"})
        assert len(prometheus.requests) == 6
        assert {path for path, _ in prometheus.requests} == {"/api/v1/query_range"}
        assert (
            'sum(increase(http_requests_total{job="api",code=~"5..",'
            'deployment="checkout-canary"}[60s]))'
        ) in prometheus.queries
        assert sum('deployment="checkout-baseline"' in q for q in prometheus.queries) == 3
        _, params = prometheus.requests[0]
        assert (params["start"], params["end"], params["step"]) == (
            str(int(T0)),
            str(int(T0 + 540)),
            "60.0",
        )

    async def test_step_defaults_to_the_config_and_can_be_set(
        self, prometheus: FakePrometheus
    ) -> None:
        """A 30 s step doubles the steps of a 9-minute window (plus the last)."""
        rec = (await run_capture(prometheus, step_s=30.0)).recording
        assert (rec.step_s, rec.steps) == (30.0, 19)

    async def test_written_recording_round_trips(
        self, prometheus: FakePrometheus, tmp_path: Path
    ) -> None:
        """What capture returns is a valid recording; written, it loads back the same."""
        from analyzer.offline.recording import dump_recording, write_recording

        rec = (await run_capture(prometheus)).recording
        write_recording(rec, tmp_path / "out.json")
        assert dump_recording(load_recording(tmp_path / "out.json")) == dump_recording(rec)

    async def test_empty_result_is_missing_with_a_note(self, prometheus: FakePrometheus) -> None:
        """No series (no 5xx at all, say) is recorded as missing, and a note says so."""
        prometheus.samples = lambda q, t: None if "code=~" in q else golden(q, t)
        captured = await run_capture(prometheus)
        assert np.isnan(captured.recording.metrics["error_rate"].canary.events).all()
        assert len(captured.notes) == 2
        assert captured.notes[0].startswith("metrics.error_rate.baseline.events: empty result")
        assert "or vector(0)" in captured.notes[0]

    async def test_several_series_are_refused(self, prometheus: FakePrometheus) -> None:
        """A query answering with several series is an error naming metric, side and role."""

        def two(_: web.Request) -> web.Response:
            result = [{"metric": {"i": str(i)}, "values": [[T0, "1"]]} for i in range(2)]
            return web.json_response(
                {"status": "success", "data": {"resultType": "matrix", "result": result}}
            )

        prometheus.reply = two
        with pytest.raises(SourcePayloadError, match=r"metrics\.error_rate\.baseline\.events: 2 "):
            await run_capture(prometheus)

    async def test_prometheus_error_is_a_source_error(self, prometheus: FakePrometheus) -> None:
        """HTTP 400 with Prometheus' message is an error naming the query and the message."""
        prometheus.reply = lambda _: web.json_response(
            {"status": "error", "errorType": "bad_data", "error": "parse error"}, status=400
        )
        with pytest.raises(SourcePayloadError) as caught:
            await run_capture(prometheus)
        assert str(caught.value).startswith("metrics.error_rate.baseline.events: Prometheus")
        assert "parse error" in str(caught.value)

    async def test_malformed_body_is_a_source_error(self, prometheus: FakePrometheus) -> None:
        """A 200 that is not Prometheus' JSON is an unusable answer, not a crash."""
        prometheus.reply = lambda _: web.Response(text="<html>proxy</html>")
        with pytest.raises(SourcePayloadError, match="unusable answer"):
            await run_capture(prometheus)

    async def test_unreachable_prometheus(self) -> None:
        """A refused connection is SourceUnavailable."""
        url = f"http://127.0.0.1:{closed_port()}"
        kwargs = {
            "prometheus_url": url,
            "baseline": BASELINE,
            "canary": CANARY,
            "start": START,
            "end": START,
            "name": "x",
            "retries": 0,
        }
        with pytest.raises(SourceUnavailable, match="cannot reach Prometheus"):
            await asyncio.to_thread(capture, config(), **kwargs)

    async def test_refuses_to_block_a_running_loop(self, prometheus: FakePrometheus) -> None:
        """Called on the event loop it raises instead of stalling it, before any request."""
        with pytest.raises(RuntimeError, match=r"asyncio\.to_thread"):
            capture(
                config(),
                prometheus_url=prometheus.url,
                baseline=BASELINE,
                canary=CANARY,
                start=START,
                end=START,
                name="x",
            )
        assert prometheus.requests == []

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"start": datetime(2026, 1, 1)}, "start"),  # naive on purpose
            ({"end": START - timedelta(minutes=1)}, "end"),
            ({"end": START + timedelta(days=30)}, "end"),
            ({"prometheus_url": "ftp://prometheus"}, "prometheus_url"),
            ({"variables": {"region": "eu"}}, "variables.region"),
            ({"variables": {"job": 'x"}'}}, "variables.job"),
            ({"canary": {"__name__": "x"}}, "canary.labels.__name__"),
            ({"baseline": {}}, "baseline"),
        ],
    )
    async def test_bad_input_names_the_argument(
        self, prometheus: FakePrometheus, overrides: dict[str, Any], field: str
    ) -> None:
        """Bad arguments are InvalidInput naming them, and nothing is queried."""
        with pytest.raises(InvalidInput) as caught:
            await run_capture(prometheus, **overrides)
        assert caught.value.field == field
        assert prometheus.requests == []


class TestCaptureCommand:
    def argv(self, prom_url: str, tmp_path: Path, *extra: str) -> list[str]:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(CONFIG), "utf-8")
        return [
            "capture",
            "--config",
            str(config_path),
            "--prometheus",
            prom_url,
            "--baseline",
            "deployment=checkout-baseline",
            "--canary",
            "deployment=checkout-canary",
            "--start",
            "2026-01-01T10:00:00Z",
            "--end",
            "2026-01-01T10:29:00Z",
            "-o",
            str(tmp_path / "checkout-0001.json"),
            *extra,
        ]

    async def test_writes_a_recording_that_backtests(
        self, prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """capture writes OUT.json; backtest replays it (the canary's 2.5× errors roll back)."""
        argv = self.argv(prometheus.url, tmp_path, "--var", "job=api")
        assert await asyncio.to_thread(main, argv) == 0
        out = capsys.readouterr().out
        assert "checkout-0001, 30 steps of 60s, 2 metrics" in out
        assert all('job="api"' in q for q in prometheus.queries)
        path = tmp_path / "checkout-0001.json"
        assert load_recording(path).name == "checkout-0001"
        config_path = str(tmp_path / "config.json")
        assert main(["backtest", "--json", "--config", config_path, str(path)]) == 0
        line = json.loads(capsys.readouterr().out)
        assert (line["name"], line["verdict"]) == ("checkout-0001", "rollback")

    @pytest.mark.parametrize(
        "case",
        [
            ("--baseline", "checkout-baseline", "--baseline: expected name=value"),
            ("--canary", "a=1,a=2", "--canary: 'a' is given twice"),
            ("--canary", "__name__=x", "--canary.labels.__name__: invalid label name"),
            ("--start", "yesterday", "--start: not an ISO 8601 time"),
            ("--start", "2026-01-01T10:00:00", "--start: '2026-01-01T10:00:00' has no time zone"),
            ("--end", "2026-01-01T09:00:00Z", "--end: 2026-01-01T09:00:00+00:00 is before"),
            ("--step", "soon", "--step: invalid duration"),
            ("--step", "0s", "--step: must be longer than 0s"),
            ("--var", "region=eu", "--var.region: not declared by the config"),
            ("--var", "job", "--var: expected name=value"),
            ("--prometheus", "prometheus:9090", "--prometheus: need an http(s) URL"),
        ],
    )
    async def test_bad_flags_exit_2_naming_the_flag(
        self,
        prometheus: FakePrometheus,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        case: tuple[str, str, str],
    ) -> None:
        """Bad input exits 2 with the flag named; nothing is queried or written."""
        flag, value, message = case
        argv = self.argv(prometheus.url, tmp_path)
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
        assert await asyncio.to_thread(main, argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"canaryd capture: invalid input: {message}"), err
        assert prometheus.requests == []
        assert not (tmp_path / "checkout-0001.json").exists()

    async def test_prometheus_failure_exits_1(
        self, prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A Prometheus that refuses the query fails the run (exit 1), naming the query."""
        prometheus.reply = lambda _: web.json_response(
            {"status": "error", "errorType": "bad_data", "error": "parse error"}, status=400
        )
        assert await asyncio.to_thread(main, self.argv(prometheus.url, tmp_path)) == 1
        err = capsys.readouterr().err
        assert err.startswith("canaryd capture: failed: metrics.error_rate.baseline.events: ")
        assert not (tmp_path / "checkout-0001.json").exists()

    async def test_empty_results_are_warned_about(
        self, prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Queries that matched nothing are named on stderr; the recording is still written."""
        prometheus.samples = lambda q, t: None if "histogram_quantile" in q else golden(q, t)
        assert await asyncio.to_thread(main, self.argv(prometheus.url, tmp_path)) == 0
        err = capsys.readouterr().err
        assert "warning: metrics.latency_p99.canary: empty result" in err
        assert (tmp_path / "checkout-0001.json").exists()
