"""Capture: a config's metrics recorded from a fake Prometheus on loopback (the client is
synchronous, so every capture runs through ``asyncio.to_thread`` while the server runs on the
test's loop)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analyzer.configs.judgeconfig import JudgeConfig, parse_config
from analyzer.errors import InvalidInput, SourcePayloadError, SourceUnavailable
from analyzer.offline.capture import Captured, capture
from analyzer.offline.recording import load_recording
from support.captures import BASELINE, CANARY, CONFIG, START, STEP, T0, golden, scripted
from support.prometheus import FakePrometheus, canned, canned_text, matrix, prometheus_error


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
        # the fake serves only /api/v1/query_range: a call elsewhere would fail the capture
        assert (
            'sum(increase(http_requests_total{job="api",code=~"5..",'
            'deployment="checkout-canary"}[60s]))'
        ) in prometheus.queries
        assert sum('deployment="checkout-baseline"' in q for q in prometheus.queries) == 3
        params = prometheus.requests[0]
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
        prometheus.handler = scripted(lambda q, t: None if "code=~" in q else golden(q, t))
        captured = await run_capture(prometheus)
        assert np.isnan(captured.recording.metrics["error_rate"].canary.events).all()
        assert len(captured.notes) == 2
        assert captured.notes[0].startswith("metrics.error_rate.baseline.events: empty result")
        assert "or vector(0)" in captured.notes[0]

    async def test_several_series_are_refused(self, prometheus: FakePrometheus) -> None:
        """A query answering with several series is an error naming metric, side and role."""
        prometheus.handler = canned(matrix([(T0, "1")], [(T0, "1")]))
        with pytest.raises(SourcePayloadError, match=r"metrics\.error_rate\.baseline\.events: 2 "):
            await run_capture(prometheus)

    async def test_prometheus_error_is_a_source_error(self, prometheus: FakePrometheus) -> None:
        """HTTP 400 with Prometheus' message is an error naming the query and the message."""
        prometheus.handler = canned(prometheus_error("bad_data", "parse error"), status=400)
        with pytest.raises(SourcePayloadError) as caught:
            await run_capture(prometheus)
        assert str(caught.value).startswith("metrics.error_rate.baseline.events: Prometheus")
        assert "parse error" in str(caught.value)

    async def test_malformed_body_is_a_source_error(self, prometheus: FakePrometheus) -> None:
        """A 200 that is not Prometheus' JSON is an unusable answer, not a crash."""
        prometheus.handler = canned_text("<html>proxy</html>")
        with pytest.raises(SourcePayloadError, match="unusable answer"):
            await run_capture(prometheus)

    async def test_unreachable_prometheus(self, refused_url: str) -> None:
        """A refused connection is SourceUnavailable."""
        kwargs = {
            "prometheus_url": refused_url,
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
