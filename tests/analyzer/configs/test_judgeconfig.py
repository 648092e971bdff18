"""analyzer.configs.judgeconfig: the judge config (DESIGN.md §3), its shipped examples and its
JSON Schema."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from analyzer.cli import main
from analyzer.configs.judgeconfig import (
    JudgeConfig,
    config_hash,
    load_config,
    parse_config,
    parse_duration,
    template_variables,
)
from analyzer.errors import InvalidInput
from analyzer.metricdata import MetricKind
from analyzer.model import InconclusivePolicy, JudgeName, NoDataPolicy
from support.paths import ROOT

CONFIG_DIR = ROOT / "config"
SCHEMA = CONFIG_DIR / "judge-config.schema.json"
EXAMPLES = sorted(CONFIG_DIR.glob("*.yaml"))

Mutation = Callable[[dict[str, Any]], None]


def _base() -> dict[str, Any]:
    """A small valid config, mutated by the rejection cases."""
    return {
        "name": "checkout",
        "step": "60s",
        "analysis_interval": "10m",
        "groups": {"errors": 70, "latency": 30},
        "metrics": [
            {
                "name": "error_rate",
                "group": "errors",
                "kind": "count",
                "judge": "threshold",
                "threshold": {"max": 0.01},
                "query": {
                    "events": 'sum(increase(http_requests{code=~"5..",${selector}}[${step}]))',
                    "exposure": "sum(increase(http_requests{${selector}}[${step}]))",
                },
            },
            {
                "name": "latency_p99",
                "group": "latency",
                "kind": "series",
                "judge": "mann-whitney",
                "query": "max(latency_p99{${selector}})",
            },
        ],
        "kill_switch": [{"metric": "error_rate", "max": 0.05}],
    }


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting a dotted path (list indices as numbers) to ``value``."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value

    return mutate


def _rejection(mutation: Mutation) -> str:
    data = _base()
    mutation(data)
    with pytest.raises(InvalidInput) as caught:
        parse_config(data)
    return caught.value.message


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
        assert parse_config(_base()).name == "checkout"

    @pytest.mark.parametrize(
        ("mutation", "expected"),
        [
            pytest.param(_set("lookBackMins", 5), "lookBackMins: Extra inputs", id="unknown-key"),
            pytest.param(
                _set("metrics.1.lookBackMins", 5), "metrics.1.lookBackMins", id="unknown-metric-key"
            ),
            pytest.param(_set("step", "1 minute"), "step: invalid duration", id="bad-duration"),
            pytest.param(_set("warmup", "-5m"), "warmup: invalid duration", id="negative-duration"),
            pytest.param(
                _set("groups", {"errors": 70, "latency": 40}),
                "groups: weights add up to 110",
                id="weights-over-100",
            ),
            pytest.param(
                _set("groups.errors", 101), "groups.errors: Input should be less", id="weight-101"
            ),
            pytest.param(
                _set("kill_switch.0.metric", "errors"),
                "kill_switch.0.metric: unknown metric 'errors'",
                id="kill-switch-unknown-metric",
            ),
            pytest.param(
                _set("metrics.1.query", "max(latency{${selector},zone=${zone}})"),
                "metrics.1.query: unknown variable ${zone}",
                id="unknown-template-variable",
            ),
            pytest.param(
                _set("metrics.0.query", "sum(rate(errors{${selector}}[${step}]))"),
                "metrics.0: a count metric needs query: {events: ..., exposure: ...}",
                id="count-with-string-query",
            ),
            pytest.param(
                _set("metrics.0.judge", "bayesian"),
                "metrics.0.judge: Input should be 'mann-whitney', 'threshold', 'sequential-count'",
                id="unknown-judge",
            ),
            pytest.param(
                _set("metrics.1.kind", "gauge"),
                "metrics.1.kind: Input should be 'series' or 'count'",
                id="unknown-kind",
            ),
            pytest.param(
                _set("on_no_data", "pause"),
                "on_no_data: Input should be 'hold' or 'rollback'",
                id="unknown-no-data-policy",
            ),
            pytest.param(
                _set("on_inconclusive", "hold"),
                "on_inconclusive: Input should be 'pause' or 'rollback'",
                id="unknown-inconclusive-policy",
            ),
            pytest.param(
                _set("metrics.1.judge", "sequential-count"),
                "metrics.1: sequential-count judges count metrics only",
                id="sequential-count-on-series",
            ),
            pytest.param(
                _set("metrics.1.judge", "sequential-mean"),
                "metrics.1: tolerance: sequential-mean needs the allowed change",
                id="sequential-mean-without-tolerance",
            ),
            pytest.param(
                _set("metrics.1.direction", "up"), "metrics.1.direction: Input should be", id="dir"
            ),
            pytest.param(
                _set("metrics.1.name", "error_rate"),
                "duplicate names ['error_rate']",
                id="duplicate-metric",
            ),
            pytest.param(
                _set("score_thresholds", {"pass": 40, "marginal": 60}),
                "marginal (60) must not exceed pass (40)",
                id="thresholds-out-of-order",
            ),
        ],
    )
    def test_rejected_naming_the_field(self, mutation: Mutation, expected: str) -> None:
        """The message starts each problem with the dotted path of the bad field."""
        assert expected in _rejection(mutation)

    def test_sequential_count_accepted(self) -> None:
        """A count metric may be judged by the anytime-valid sequential test."""
        data = _base()
        data["metrics"][0]["judge"] = "sequential-count"
        data["metrics"][0]["tolerance"] = 1.2
        assert parse_config(data).metrics[0].judge.sequential

    def test_steering_fields_are_enums(self) -> None:
        """kind, judge and the two policies are read into their enums, spelt as in the file."""
        data = _base()
        data |= {"on_no_data": "rollback", "on_inconclusive": "rollback"}
        config = parse_config(data)
        assert [(m.kind, m.judge) for m in config.metrics] == [
            (MetricKind.COUNT, JudgeName.THRESHOLD),
            (MetricKind.SERIES, JudgeName.MANN_WHITNEY),
        ]
        assert config.on_no_data is NoDataPolicy.ROLLBACK
        assert config.on_inconclusive is InconclusivePolicy.ROLLBACK
        assert parse_config(_base()).on_no_data is NoDataPolicy.HOLD

    def test_declared_variable_is_accepted(self) -> None:
        """A declared variable may be used in a template."""
        data = _base()
        data["variables"] = {"zone": "eu-west-1"}
        data["metrics"][1]["query"] = 'max(latency{${selector},zone="${zone}"})'
        assert parse_config(data).variables == {"zone": "eu-west-1"}

    def test_malformed_placeholder(self) -> None:
        """A lone $ in a template is an error naming the query."""
        with pytest.raises(ValueError, match=r"metrics\.0\.query: malformed placeholder"):
            template_variables("rate(x[$ 5m])", "metrics.0.query")


class TestDependence:
    """The optional ``dependence`` of a metric: none (default) or adjust, mann-whitney only."""

    def test_default_is_none(self) -> None:
        """Absent, a metric takes its samples as independent (Kayenta's test)."""
        assert parse_config(_base()).metrics[1].dependence == "none"

    def test_unknown_value_names_the_field(self) -> None:
        """dependence: hac is refused at metrics.1.dependence."""
        message = _rejection(_set("metrics.1.dependence", "hac"))
        assert message.startswith("metrics.1.dependence: Input should be 'none' or 'adjust'")

    def test_only_mann_whitney_adjusts(self) -> None:
        """On a threshold metric the option is an error naming dependence."""
        message = _rejection(_set("metrics.0.dependence", "adjust"))
        assert "dependence: only the mann-whitney judge adjusts for it" in message

    def test_validate_exits_two_naming_the_field(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`canaryd validate` on an unknown value exits 2 and names metrics.1.dependence."""
        data = _base()
        data["metrics"][1]["dependence"] = "yes"
        path = tmp_path / "dependence.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        assert "metrics.1.dependence: Input should be" in capsys.readouterr().err


class TestMetricLookup:
    """JudgeConfig.metric finds a metric by name; a name it lacks is the project's error."""

    def test_known_name(self) -> None:
        """The metric called so is returned."""
        assert parse_config(_base()).metric("latency_p99").kind is MetricKind.SERIES

    def test_unknown_name_is_invalid_input_naming_the_field(self) -> None:
        """No bare KeyError: InvalidInput on ``metrics``, listing the metrics there are."""
        with pytest.raises(InvalidInput) as caught:
            parse_config(_base()).metric("errors")
        assert caught.value.field == "metrics"
        assert caught.value.message == "no metric 'errors' (known: ['error_rate', 'latency_p99'])"


class TestDurations:
    """Durations are seconds or strings such as '90s', '10m', '1h30m', '500ms'."""

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            (90, 90.0),
            ("90s", 90.0),
            ("10m", 600.0),
            ("1h30m", 5400.0),
            ("500ms", 0.5),
            ("1d", 86400.0),
        ],
    )
    def test_parses(self, value: object, seconds: float) -> None:
        """Each accepted spelling gives seconds."""
        assert parse_duration(value) == seconds

    @pytest.mark.parametrize("value", [True, "10", "m", "-1s", -1, float("inf"), "10 m"])
    def test_refuses(self, value: object) -> None:
        """Booleans, unitless strings, negative and infinite values are refused."""
        with pytest.raises(ValueError, match="duration"):
            parse_duration(value)


class TestConfigHash:
    """A config's version is the hash of its canonical content."""

    def test_same_content_same_hash(self) -> None:
        """Equivalent spellings ('10m' and 600) give one hash."""
        other = _base()
        other["analysis_interval"] = 600
        assert config_hash(parse_config(_base())) == config_hash(parse_config(other))

    def test_hash_is_stable_across_releases(self) -> None:
        """The hash of a config is a stored canary's link to it: this one's is fixed for good."""
        digest = "81f3b0a735d05107849fa0c797435e60da62ffeadb03874c894f04b490be42d1"
        assert config_hash(parse_config(_base())) == digest

    def test_dependence_none_keeps_the_hash(self) -> None:
        """dependence: none, spelt or not, is the hash of a config without the key; adjust
        changes it."""
        spelt, adjusted = _base(), _base()
        spelt["metrics"][1]["dependence"] = "none"
        adjusted["metrics"][1]["dependence"] = "adjust"
        base = config_hash(parse_config(_base()))
        assert config_hash(parse_config(spelt)) == base
        assert config_hash(parse_config(adjusted)) != base
        assert "dependence" not in json.dumps(parse_config(spelt).model_dump(mode="json"))

    def test_changed_content_changes_hash(self) -> None:
        """A changed threshold changes the hash."""
        other = copy.deepcopy(_base())
        other["metrics"][0]["threshold"]["max"] = 0.02
        assert config_hash(parse_config(_base())) != config_hash(parse_config(other))


class TestValidateCommand:
    """`canaryd validate` exits 0 on good configs and 2 naming the field on bad ones."""

    def test_good_configs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Every shipped example validates; one ok line per file."""
        assert main(["validate", *map(str, EXAMPLES)]) == 0
        out = capsys.readouterr().out
        assert out.count(": ok — ") == len(EXAMPLES)

    def test_bad_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown key exits 2; stderr names the file and the field."""
        data = _base()
        data["metrics"][1]["lookBackMins"] = 5
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err
        assert "metrics.1.lookBackMins: Extra inputs are not permitted" in err

    def test_bad_json_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A JSON config is read as JSON; a bad duration exits 2 naming the field."""
        data = _base()
        data["step"] = "soon"
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        assert "step: invalid duration 'soon'" in capsys.readouterr().err

    def test_unparsable_yaml(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Text that is not YAML exits 2 saying so."""
        path = tmp_path / "broken.yaml"
        path.write_text("name: [unclosed\n", encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        assert "not valid yaml" in capsys.readouterr().err

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing file exits 2 naming it."""
        missing = tmp_path / "nope.yaml"
        assert main(["validate", str(missing)]) == 2
        assert f"{missing}: cannot read" in capsys.readouterr().err
