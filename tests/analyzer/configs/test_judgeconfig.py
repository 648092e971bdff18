"""analyzer.configs.judgeconfig: the judge config (DESIGN.md §3), its shipped examples and its
JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.configs.judgeconfig import (
    JudgeConfig,
    load_config,
    parse_config,
    template_variables,
)
from analyzer.metricdata import MetricKind
from analyzer.model import InconclusivePolicy, JudgeName, NoDataPolicy
from support.config_edits import Mutation, base_config, rejection, set_path
from support.paths import ROOT

CONFIG_DIR = ROOT / "config"
SCHEMA = CONFIG_DIR / "judge-config.schema.json"
EXAMPLES = sorted(CONFIG_DIR.glob("*.yaml"))


class TestShippedConfigs:
    """config/ holds valid examples and the schema generated from the model."""

    def test_examples_exist(self) -> None:
        """The two documented examples are shipped."""
        assert {p.name for p in EXAMPLES} >= {"http-golden-signals.yaml", "latency-only.yaml"}

    @pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
    def test_example_validates(self, path: Path) -> None:
        """Every config/*.yaml loads, and its name matches its file name."""
        config = load_config(path)
        assert config.name == path.stem

    def test_golden_signals_uses_available_judges(self) -> None:
        """The Kayenta-style example uses mann-whitney and threshold, with a kill-switch."""
        config = load_config(CONFIG_DIR / "http-golden-signals.yaml")
        assert {m.judge for m in config.metrics} == {"mann-whitney", "threshold"}
        assert {m.kind for m in config.metrics} == {"series", "count"}
        assert config.kill_switch

    def test_schema_is_current(self) -> None:
        """The committed schema is JudgeConfig.model_json_schema(by_alias=True), byte for byte."""
        generated = json.dumps(JudgeConfig.model_json_schema(by_alias=True), indent=2) + "\n"
        assert SCHEMA.read_text(encoding="utf-8") == generated

    def test_schema_command_prints_the_committed_schema(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`canaryd schema` prints exactly the committed file."""
        assert main(["schema"]) == 0
        assert capsys.readouterr().out == SCHEMA.read_text(encoding="utf-8")

    def test_schema_forbids_unknown_keys(self) -> None:
        """The schema tells editors what the model enforces: no additional properties."""
        schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
        assert schema["additionalProperties"] is False
        assert schema["$defs"]["MetricConfig"]["additionalProperties"] is False


class TestRejections:
    """Bad configs are rejected with a message that names the field."""

    def test_base_is_valid(self) -> None:
        """The config the cases mutate is itself valid (so each rejection is the mutation's)."""
        assert parse_config(base_config()).name == "checkout"

    @pytest.mark.parametrize(
        ("mutation", "expected"),
        [
            pytest.param(
                set_path("lookBackMins", 5), "lookBackMins: Extra inputs", id="unknown-key"
            ),
            pytest.param(
                set_path("metrics.1.lookBackMins", 5),
                "metrics.1.lookBackMins",
                id="unknown-metric-key",
            ),
            pytest.param(set_path("step", "1 minute"), "step: invalid duration", id="bad-duration"),
            pytest.param(
                set_path("warmup", "-5m"), "warmup: invalid duration", id="negative-duration"
            ),
            pytest.param(
                set_path("groups", {"errors": 70, "latency": 40}),
                "groups: weights add up to 110",
                id="weights-over-100",
            ),
            pytest.param(
                set_path("groups.errors", 101),
                "groups.errors: Input should be less",
                id="weight-101",
            ),
            pytest.param(
                set_path("kill_switch.0.metric", "errors"),
                "kill_switch.0.metric: unknown metric 'errors'",
                id="kill-switch-unknown-metric",
            ),
            pytest.param(
                set_path("metrics.1.query", "max(latency{${selector},zone=${zone}})"),
                "metrics.1.query: unknown variable ${zone}",
                id="unknown-template-variable",
            ),
            pytest.param(
                set_path("metrics.0.query", "sum(rate(errors{${selector}}[${step}]))"),
                "metrics.0: a count metric needs query: {events: ..., exposure: ...}",
                id="count-with-string-query",
            ),
            pytest.param(
                set_path("metrics.0.judge", "bayesian"),
                "metrics.0.judge: Input should be 'mann-whitney', 'threshold', 'sequential-count'",
                id="unknown-judge",
            ),
            pytest.param(
                set_path("metrics.1.kind", "gauge"),
                "metrics.1.kind: Input should be 'series' or 'count'",
                id="unknown-kind",
            ),
            pytest.param(
                set_path("on_no_data", "pause"),
                "on_no_data: Input should be 'hold' or 'rollback'",
                id="unknown-no-data-policy",
            ),
            pytest.param(
                set_path("on_inconclusive", "hold"),
                "on_inconclusive: Input should be 'pause' or 'rollback'",
                id="unknown-inconclusive-policy",
            ),
            pytest.param(
                set_path("metrics.1.judge", "sequential-count"),
                "metrics.1: sequential-count judges count metrics only",
                id="sequential-count-on-series",
            ),
            pytest.param(
                set_path("metrics.1.judge", "sequential-mean"),
                "metrics.1: tolerance: sequential-mean needs the allowed change",
                id="sequential-mean-without-tolerance",
            ),
            pytest.param(
                set_path("metrics.1.direction", "up"),
                "metrics.1.direction: Input should be",
                id="dir",
            ),
            pytest.param(
                set_path("metrics.1.name", "error_rate"),
                "duplicate names ['error_rate']",
                id="duplicate-metric",
            ),
            pytest.param(
                set_path("score_thresholds", {"pass": 40, "marginal": 60}),
                "marginal (60) must not exceed pass (40)",
                id="thresholds-out-of-order",
            ),
        ],
    )
    def test_rejected_naming_the_field(self, mutation: Mutation, expected: str) -> None:
        """The message starts each problem with the dotted path of the bad field."""
        assert expected in rejection(mutation)

    def test_sequential_count_accepted(self) -> None:
        """A count metric may be judged by the anytime-valid sequential test."""
        data = base_config()
        data["metrics"][0]["judge"] = "sequential-count"
        data["metrics"][0]["tolerance"] = 1.2
        assert parse_config(data).metrics[0].judge.sequential

    def test_steering_fields_are_enums(self) -> None:
        """kind, judge and the two policies are read into their enums, spelt as in the file."""
        data = base_config()
        data |= {"on_no_data": "rollback", "on_inconclusive": "rollback"}
        config = parse_config(data)
        assert [(m.kind, m.judge) for m in config.metrics] == [
            (MetricKind.COUNT, JudgeName.THRESHOLD),
            (MetricKind.SERIES, JudgeName.MANN_WHITNEY),
        ]
        assert config.on_no_data is NoDataPolicy.ROLLBACK
        assert config.on_inconclusive is InconclusivePolicy.ROLLBACK
        assert parse_config(base_config()).on_no_data is NoDataPolicy.HOLD

    def test_declared_variable_is_accepted(self) -> None:
        """A declared variable may be used in a template."""
        data = base_config()
        data["variables"] = {"zone": "eu-west-1"}
        data["metrics"][1]["query"] = 'max(latency{${selector},zone="${zone}"})'
        assert parse_config(data).variables == {"zone": "eu-west-1"}

    def test_malformed_placeholder(self) -> None:
        """A lone $ in a template is an error naming the query."""
        with pytest.raises(ValueError, match=r"metrics\.0\.query: malformed placeholder"):
            template_variables("rate(x[$ 5m])", "metrics.0.query")
