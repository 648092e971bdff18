"""The ``canaryd capture`` command: a recording written from a fake Prometheus on loopback that
backtests, and flags checked before anything is queried."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.offline.recording import load_recording
from support.captures import CONFIG, golden, scripted
from support.prometheus import FakePrometheus, canned, prometheus_error


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
        prometheus.handler = canned(prometheus_error("bad_data", "parse error"), status=400)
        assert await asyncio.to_thread(main, self.argv(prometheus.url, tmp_path)) == 1
        err = capsys.readouterr().err
        assert err.startswith("canaryd capture: failed: metrics.error_rate.baseline.events: ")
        assert not (tmp_path / "checkout-0001.json").exists()

    async def test_empty_results_are_warned_about(
        self, prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Queries that matched nothing are named on stderr; the recording is still written."""
        prometheus.handler = scripted(
            lambda q, t: None if "histogram_quantile" in q else golden(q, t)
        )
        assert await asyncio.to_thread(main, self.argv(prometheus.url, tmp_path)) == 0
        err = capsys.readouterr().err
        assert "warning: metrics.latency_p99.canary: empty result" in err
        assert (tmp_path / "checkout-0001.json").exists()
