"""The ``canaryd backtest`` command: table and JSON output, input errors naming file and field,
progress, and the console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from analyzer.offline.recording import dump_recording
from support.cli import CANARYD, run
from support.recordings import SEQUENTIAL, fixture_paths, recording


class TestBacktestCommand:
    def test_table_then_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        """By default: a table (name, verdict, step, minute, reason), then the summary."""
        code, out, err = run(["backtest", "--config", str(SEQUENTIAL), *fixture_paths()], capsys)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0].split() == ["name", "verdict", "step", "minute", "reason"]
        assert lines[1].split()[:4] == ["aa-0001", "promote", "59", "59"]
        assert [line.split()[1] for line in lines[2:5]] == ["rollback"] * 3
        assert lines[5] == ""
        assert lines[6].startswith("false rollbacks: 0 of 1 A/A runs (0.0 %, 95 % CI 0.0–79.3 %)")
        assert lines[7].startswith("power: 3 of 3 regressions detected (100.0 %)")
        assert lines[8].startswith("median time to detect: ")

    def test_json_lines_have_the_exact_shape(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json: one line per recording with exactly name, verdict, step, reason; then the
        summary as a last line under "summary"."""
        code, out, _ = run(
            ["backtest", "--json", "--config", str(SEQUENTIAL), *fixture_paths()], capsys
        )
        assert code == 0
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 5
        for line, path in zip(lines[:4], fixture_paths(), strict=True):
            assert list(line) == ["name", "verdict", "step", "reason"]
            assert line["name"] == Path(path).stem
            assert line["verdict"] in {"rollback", "promote", "inconclusive", "none"}
            assert isinstance(line["step"], int)
            assert isinstance(line["reason"], str)
        assert lines[0] == {
            "name": "aa-0001",
            "verdict": "promote",
            "step": 59,
            "reason": "score 100 ≥ pass 75",
        }
        assert list(lines[4]) == ["summary"]
        assert lines[4]["summary"]["power"] == 1.0
        assert lines[4]["summary"]["false_rollbacks"] == 0

    def test_no_summary_without_truth(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Recordings without truth get verdict lines only; a null step prints as null."""
        doc = dump_recording(recording(5))
        path = tmp_path / "plain.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        stages = '[{"weight": 50, "duration": "1h"}]'
        code, out, _ = run(
            ["backtest", "--json", "--stages", stages, "--config", str(SEQUENTIAL), str(path)],
            capsys,
        )
        assert code == 0
        (line,) = [json.loads(text) for text in out.splitlines()]
        assert (line["name"], line["verdict"], line["step"]) == ("synthetic", "none", None)
        assert '"step": null' in out

    @pytest.mark.parametrize(
        ("doc_change", "field"),
        [
            ({"step_s": -60}, "step_s"),
            (
                {
                    "metrics": {
                        "error_rate": {
                            "kind": "count",
                            "baseline": {"events": [1]},
                            "canary": {"events": [1], "exposure": [1]},
                        }
                    }
                },
                "metrics.error_rate.baseline.exposure",
            ),
            (
                {"truth": {"regression": True, "metric": "error_rate", "onset_step": 99}},
                "truth.onset_step",
            ),
        ],
    )
    def test_bad_recording_exits_2_naming_file_and_field(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        doc_change: dict[str, Any],
        field: str,
    ) -> None:
        """A bad recording stops the run before any replay, exit 2, naming file and field."""
        path = tmp_path / "broken-0001.json"
        path.write_text(json.dumps({**dump_recording(recording(5)), **doc_change}), "utf-8")
        code, out, err = run(
            ["backtest", "--config", str(SEQUENTIAL), fixture_paths()[0], str(path)], capsys
        )
        assert (code, out) == (2, "")
        assert err.startswith(f"canaryd backtest: invalid input: {path}: {field}: "), err

    def test_bad_config_exits_2_naming_file_and_field(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A config with a misspelt key is refused naming the file and the key."""
        config = tmp_path / "bad.yaml"
        config.write_text(SEQUENTIAL.read_text("utf-8").replace("alpha:", "alpah:"), "utf-8")
        code, _, err = run(["backtest", "--config", str(config), *fixture_paths()], capsys)
        assert code == 2
        assert f"{config}: alpah: Extra inputs are not permitted" in err

    def test_step_mismatch_exits_2_naming_both(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A config at 30 s against 60 s recordings is refused naming both step lengths."""
        config = tmp_path / "fast.yaml"
        config.write_text(SEQUENTIAL.read_text("utf-8").replace("step: 60s", "step: 30s"), "utf-8")
        code, _, err = run(["backtest", "--config", str(config), fixture_paths()[0]], capsys)
        assert code == 2
        assert f"{fixture_paths()[0]}: step_s: the recording's step_s is 60s" in err
        assert "step 30s" in err

    def test_bad_stages_exit_2_naming_the_flag(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--stages is validated as at registration; errors name the flag and the stage."""
        stages = '[{"weight": 5, "duration": "10 minutes"}]'
        code, _, err = run(
            ["backtest", "--stages", stages, "--config", str(SEQUENTIAL), fixture_paths()[0]],
            capsys,
        )
        assert code == 2
        assert "--stages: 0.duration: invalid duration" in err

    def test_missing_metric_is_warned_about(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A config metric the recording lacks is named on stderr and judged as no data."""
        config = tmp_path / "more.yaml"
        text = SEQUENTIAL.read_text("utf-8").replace("name: latency_p99", "name: latency_p95")
        config.write_text(text.replace("{metric: latency_p99", "{metric: latency_p95"), "utf-8")
        code, _, err = run(["backtest", "--config", str(config), fixture_paths()[0]], capsys)
        assert code == 0
        assert f"warning: {fixture_paths()[0]} has no latency_p95; judged as no data" in err

    def test_progress_bar_for_long_runs(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Over 20 recordings, --progress draws a bar on stderr; stdout stays clean."""
        paths = []
        for i in range(21):
            path = tmp_path / f"r-{i:02d}.json"
            doc = dump_recording(recording(3, name=f"r-{i:02d}"))
            path.write_text(json.dumps(doc), "utf-8")
            paths.append(str(path))
        argv = ["backtest", "--json", "--config", str(SEQUENTIAL), *paths]
        code, out, err = run([*argv[:1], "--progress", *argv[1:]], capsys)
        assert code == 0
        assert len(out.splitlines()) == 21
        assert "\r[" in err
        assert f"[{'#' * 30}] 21/21" in err
        assert err.endswith("\n")
        for flags in ([], ["--no-progress"]):  # stderr is not a terminal under capsys
            code, _, err = run([*argv[:1], *flags, *argv[1:]], capsys)
            assert (code, err) == (0, "")
        code, _, err = run(["backtest", "--progress", *argv[1:-1]], capsys)  # 20: no bar
        assert (code, err) == (0, "")

    def test_console_script(self) -> None:
        """The installed canaryd script runs a backtest and exits 0."""
        done = subprocess.run(
            [str(CANARYD), "backtest", "--json", "--config", str(SEQUENTIAL), fixture_paths()[1]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        line = json.loads(done.stdout.splitlines()[0])
        assert (line["name"], line["verdict"]) == ("err-3x-0001", "rollback")
